"""Off-topic messages written for the coverage judgement (no package ships such sets), in two
separate halves: the development half fits and tunes the judgement, the report half only measures
it. Each half has small talk and general-knowledge questions from other domains; questions of
other software's documentation come from the Debian FAQ (development) and from the query sets
asked of another set's index (both halves, different pairs)."""

from __future__ import annotations

from bench.relevance import SMALL_TALK

SMALL_TALK_DEV = SMALL_TALK
GENERAL_DEV = (
    "What is the boiling point of water at sea level?",
    "Who wrote Pride and Prejudice?",
    "How many players are on a football team?",
    "What causes the northern lights?",
    "How do I make sourdough bread rise better?",
    "What is the best way to learn to play the guitar?",
    "How far is the Moon from the Earth?",
    "Which vitamins are in oranges?",
    "How do I change a flat tyre on my bike?",
    "What is the difference between a crocodile and an alligator?",
    "When did the Roman Empire fall?",
    "How long should I boil an egg?",
    "What is the tallest building in the world?",
    "How do vaccines work?",
    "What should I pack for a week of hiking?",
    "Why is the sky blue?",
    "How do I get red wine out of a carpet?",
    "What is the population of Canada?",
    "Which planet has the most moons?",
    "How do I train my dog to sit?",
)
SMALL_TALK_REPORT = (
    "hey there",
    "good afternoon!",
    "how's it going?",
    "thank you so much",
    "nice one",
    "Are you there?",
    "what are you up to?",
    "Have a great weekend!",
    "brb",
    "Does anyone want coffee?",
    "I'm running late today, sorry.",
    "who's on call this week?",
    "Did you watch the game yesterday?",
    "sounds good",
    "What's your favourite colour?",
    "Can you sing a song?",
    "I love this team!",
    "ping",
    "Is it Friday yet?",
    "Let's grab lunch at noon.",
)
GENERAL_REPORT = (
    "What is the speed of light?",
    "Who discovered penicillin?",
    "How many bones are in the human body?",
    "What is the largest ocean on Earth?",
    "How do I bake chocolate chip cookies?",
    "What language is spoken in Brazil?",
    "How does a heat pump work?",
    "Who was the first person on the Moon?",
    "What is the recommended daily water intake?",
    "How do I repot a cactus?",
    "What year did the Berlin Wall fall?",
    "Which country has the most islands?",
    "How do solar panels generate electricity?",
    "What is the capital of Kenya?",
    "How do I remove rust from a knife?",
    "What is a black hole?",
    "How many calories are in a banana?",
    "Why do cats purr?",
    "What is the longest river in Europe?",
    "How do I improve my chess opening?",
)
