"""Questions for the `pallets` report set (bench/build_pallets.py), written by hand for this benchmark.

Each entry: a question as it would be asked in a FAQ or a support thread, the same need typed in a
hurry in chat, and the section(s) of the manuals that answer it ("project/page.html#section-id").
They were written from the manuals' tables of contents and section texts, in users' words rather
than the headings' (a heading is rarely how someone asks). No system was run on them before they
were fixed; they are a report set, not a development set: nothing is tuned on them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    question: str
    chat: str
    sections: tuple[str, ...]


def _q(question: str, chat: str, *sections: str) -> Entry:
    return Entry(question, chat, sections)


QUESTIONS: tuple[Entry, ...] = (
    # Flask
    _q(
        "How do I keep user input from injecting HTML when a view returns a string?",
        "escape user input in returned html",
        "flask/quickstart.html#html-escaping",
    ),
    _q(
        "Why does my URL without a trailing slash redirect to the one with a slash?",
        "trailing slash redirect",
        "flask/quickstart.html#unique-urls-redirection-behavior",
    ),
    _q(
        "Why should I build links with url_for instead of writing the URLs by hand?",
        "url_for vs hardcoded urls",
        "flask/quickstart.html#url-building",
    ),
    _q(
        "How do I read a cookie from the request and set one on the response?",
        "read and set cookies in a view",
        "flask/quickstart.html#cookies",
    ),
    _q(
        "What can a view function return, for example a dict or a tuple with a status code?",
        "view return value tuple status",
        "flask/quickstart.html#about-responses",
    ),
    _q(
        "How do I handle an uploaded file and store it under a safe file name?",
        "save uploaded file safely",
        "flask/quickstart.html#file-uploads",
        "flask/patterns/fileuploads.html#a-gentle-introduction",
    ),
    _q(
        "What is the instance folder and what should I put in it?",
        "instance folder purpose",
        "flask/config.html#instance-folders",
    ),
    _q(
        "Can I load configuration values from environment variables with a common prefix?",
        "config from env vars prefix",
        "flask/config.html#configuring-from-environment-variables",
    ),
    _q(
        "What is a good way to keep separate settings for development and production?",
        "dev vs prod config",
        "flask/config.html#development-production",
    ),
    _q(
        "How does the flask command find my application when I run it?",
        "flask cli can't find my app",
        "flask/cli.html#application-discovery",
    ),
    _q(
        "Can the flask command read environment variables from a .env file?",
        "flask dotenv support",
        "flask/cli.html#environment-variables-from-dotenv",
    ),
    _q(
        "How do I add my own command to the flask command line tool?",
        "custom flask cli command",
        "flask/cli.html#custom-commands",
    ),
    _q(
        "The development server says the address is already in use. What can I do?",
        "port 5000 already in use",
        "flask/server.html#address-already-in-use",
    ),
    _q(
        "Is it safe to leave the interactive debugger on in production?",
        "debugger in production?",
        "flask/debugging.html#in-production",
    ),
    _q(
        "How do I return errors of my API as JSON instead of HTML error pages?",
        "api errors as json",
        "flask/errorhandling.html#returning-api-errors-as-json",
    ),
    _q(
        "What does the user get when an exception is raised and no error handler is registered for it?",
        "unhandled exception response",
        "flask/errorhandling.html#unhandled-exceptions",
    ),
    _q(
        "How can I be notified by email when my application has an error in production?",
        "email errors to admins",
        "flask/logging.html#email-errors-to-admins",
    ),
    _q(
        "How do I add the request URL and the client's IP address to every log message?",
        "log request url and client ip",
        "flask/logging.html#injecting-request-information",
    ),
    _q(
        "I get a RuntimeError about working outside of application context. How do I fix it?",
        "working outside of application context",
        "flask/appcontext.html#manually-push-a-context",
    ),
    _q(
        "Where should I keep a database connection so that it is reused during one request?",
        "store db connection on g",
        "flask/appcontext.html#storing-data",
    ),
    _q(
        "When are teardown functions called, and are they called if the request failed?",
        "when does teardown run",
        "flask/reqcontext.html#teardown-callbacks",
    ),
    _q(
        "Can a blueprint be registered on another blueprint?",
        "nested blueprints",
        "flask/blueprints.html#nesting-blueprints",
    ),
    _q(
        "How does a blueprint ship its own templates, and what happens if the application has a template "
        "with the same name?",
        "blueprint templates override",
        "flask/blueprints.html#templates",
    ),
    _q(
        "In a test, how do I make the client follow a redirect and see where it ended up?",
        "test client follow redirects",
        "flask/testing.html#following-redirects",
    ),
    _q(
        "How can a test look at or change what is stored in the session?",
        "modify session in tests",
        "flask/testing.html#accessing-and-modifying-the-session",
    ),
    _q(
        "How do I test the command line commands I added to my app?",
        "test custom cli commands",
        "flask/testing.html#running-commands-with-the-cli-runner",
    ),
    _q(
        "My code is mostly async. Should I use Quart rather than Flask?",
        "quart vs flask for async",
        "flask/async-await.html#when-to-use-quart-instead",
    ),
    _q(
        "Can I start a background task from an async view and return before it finishes?",
        "background task from async view",
        "flask/async-await.html#background-tasks",
    ),
    _q(
        "How do I make the session cookie Secure, HttpOnly and SameSite?",
        "secure httponly samesite cookie",
        "flask/security.html#set-cookie-options",
    ),
    _q(
        "Does autoescaping in templates protect me from every kind of cross-site scripting?",
        "is autoescaping enough against xss",
        "flask/security.html#cross-site-scripting-xss",
    ),
    _q(
        "My app runs behind a reverse proxy and sees the proxy's IP and http instead of https. How do I "
        "fix that?",
        "behind nginx wrong client ip",
        "flask/deploying/proxy_fix.html#tell-flask-it-is-behind-a-proxy",
        "werkzeug/middleware/proxy_fix.html#x-forwarded-for-proxy-fix",
    ),
    _q(
        "How do I limit the size of files users can upload?",
        "limit upload size",
        "flask/patterns/fileuploads.html#improving-uploads",
    ),
    _q(
        "How do I flash a message with a category such as error or warning and show it in the template?",
        "flash message categories",
        "flask/patterns/flashing.html#flashing-with-categories",
    ),
    _q(
        "How should an extension be initialised when the app is created by a factory function?",
        "init_app extension with app factory",
        "flask/patterns/appfactories.html#factories-extensions",
    ),
    _q(
        "Why is the request object gone inside the generator of my streamed response?",
        "request missing in streaming generator",
        "flask/patterns/streaming.html#streaming-with-context",
    ),
    _q(
        "How do I set up Celery so that its tasks run with the Flask application context?",
        "celery with flask app context",
        "flask/patterns/celery.html#configure",
    ),
    _q(
        "How can a view change the response, for example set a cookie, before the response object exists?",
        "modify response before it exists",
        "flask/patterns/deferredcallbacks.html#deferred-request-callbacks",
    ),
    _q(
        "Our HTTP proxy only lets GET and POST through. How can clients still send PUT or DELETE?",
        "http method override",
        "flask/patterns/methodoverrides.html#adding-http-method-overrides",
    ),
    _q(
        "Is one instance of a class-based view shared between requests, so can I keep data on self?",
        "class based view self shared?",
        "flask/views.html#view-lifetime-and-self",
    ),
    _q(
        "How do I make a variable available in all templates without passing it every time?",
        "inject variable into all templates",
        "flask/templating.html#context-processors",
    ),
    _q(
        "How do I register my own template filter in a Flask app?",
        "custom jinja filter flask",
        "flask/templating.html#registering-filters",
    ),
    _q(
        "What does the word micro in microframework mean for Flask?",
        "why is it called micro",
        "flask/design.html#what-does-micro-mean",
    ),
    _q(
        "Why does Flask use thread-local objects such as request, and what are the downsides?",
        "thread locals why",
        "flask/design.html#thread-locals",
    ),
    _q(
        "Which optional packages does Flask use when they are installed?",
        "flask optional dependencies",
        "flask/installation.html#optional-dependencies",
    ),
    _q(
        "How should I name the package of a Flask extension I publish?",
        "extension naming rules",
        "flask/extensiondev.html#naming",
    ),
    # Werkzeug
    _q(
        "What is the debugger PIN and can I turn it off?",
        "debugger pin",
        "werkzeug/debug.html#debugger-pin",
    ),
    _q(
        "How does the reloader notice that my code changed, and can it use watchdog?",
        "reloader watchdog stat",
        "werkzeug/serving.html#reloader",
    ),
    _q(
        "What is the quickest way to run the development server over HTTPS?",
        "dev server https adhoc",
        "werkzeug/serving.html#adhoc-certificates",
    ),
    _q(
        "How can I cap how much request data is read and kept in memory?",
        "limit request body size",
        "werkzeug/request_data.html#limiting-request-data",
    ),
    _q(
        "How do I write my own URL converter for routes?",
        "custom url converter",
        "werkzeug/routing.html#custom-converters",
    ),
    _q(
        "Can I modify a request object after it was created, and can response objects be reused?",
        "are request objects mutable",
        "werkzeug/wrappers.html#mutability-and-reusability-of-wrappers",
    ),
    _q(
        "Should I use the high-level request and response objects or the low-level functions?",
        "high level vs low level api",
        "werkzeug/levels.html#high-or-low",
    ),
    _q(
        "Why is the path I get already decoded, and how do I get the raw request URI?",
        "raw request uri path encoding",
        "werkzeug/wsgi.html#raw-request-uri-and-path-encoding",
    ),
    _q(
        "When does Werkzeug parse the form data of a request?",
        "when is form data parsed",
        "werkzeug/request_data.html#when-does-werkzeug-parse",
    ),
    _q(
        "How do I let only some host names use the interactive debug console?",
        "debugger allowed hosts",
        "werkzeug/debug.html#allowed-hosts",
    ),
    # Jinja
    _q(
        "How fast is Jinja compared with other template engines?",
        "jinja performance",
        "jinja/faq.html#how-fast-is-jinja",
    ),
    _q(
        "Why is HTML escaping not switched on by default in Jinja?",
        "why no autoescape by default",
        "jinja/faq.html#why-is-html-escaping-not-the-default",
    ),
    _q(
        "How do I remove the whitespace and newlines around a block tag in a template?",
        "jinja strip whitespace around tags",
        "jinja/templates.html#whitespace-control",
    ),
    _q(
        "Can I force every child template to override a block?",
        "required block",
        "jinja/templates.html#required-blocks",
    ),
    _q(
        "Do macros I import from another template see the variables of the current template?",
        "import with context",
        "jinja/templates.html#import-context-behavior",
    ),
    _q(
        "Is the sandbox enough to render templates written by untrusted users safely?",
        "sandbox safe for untrusted templates?",
        "jinja/sandbox.html#security-considerations",
    ),
    _q(
        "Can Jinja render a template to a Python list or number instead of a string?",
        "render native python types",
        "jinja/nativetypes.html#native-python-types",
        "jinja/nativetypes.html#examples",
    ),
    _q(
        "Coming from Django templates, do I need parentheses when I call a method in Jinja?",
        "method calls parentheses django",
        "jinja/switching.html#method-calls",
    ),
    _q(
        "How do I highlight the menu entry of the page that is currently shown?",
        "highlight active menu item",
        "jinja/tricks.html#highlighting-active-menu-items",
    ),
    _q(
        "Can I use break and continue inside a for loop in a template?",
        "break continue in loop",
        "jinja/templates.html#loop-controls",
        "jinja/extensions.html#loop-controls",
    ),
    _q(
        "Why is it called Jinja?",
        "jinja name meaning",
        "jinja/faq.html#why-is-it-called-jinja",
    ),
    _q(
        "How do I mark text in templates as translatable with gettext?",
        "translate templates i18n",
        "jinja/templates.html#i18n",
    ),
    # Click
    _q(
        "How do I define an on/off flag such as --shout/--no-shout?",
        "boolean flag option",
        "click/options.html#boolean-flags",
    ),
    _q(
        "Can an option take its value from an environment variable?",
        "option value from env var",
        "click/options.html#values-from-environment-variables",
    ),
    _q(
        "How do I ask for a password without echoing it and make the user type it twice?",
        "hidden password prompt confirm",
        "click/options.html#password-prompts",
    ),
    _q(
        "How do I add a --version option that prints something and exits before the other options are "
        "processed?",
        "eager option that exits",
        "click/options.html#callbacks-and-eager-options",
    ),
    _q(
        "If my command fails, will an output file argument have been created empty already?",
        "lazy file opening",
        "click/arguments.html#file-opening-safety",
    ),
    _q(
        "How do I run the group's code when it is called without a subcommand?",
        "invoke group without subcommand",
        "click/commands.html#group-invocation-without-command",
    ),
    _q(
        "Can one invocation run several subcommands one after the other?",
        "chain multiple subcommands",
        "click/commands.html#multi-command-chaining",
    ),
    _q(
        "How do I test a command that creates files without touching my working directory?",
        "isolated filesystem in tests",
        "click/testing.html#file-system-isolation",
    ),
    _q(
        "How do I turn on tab completion for my command line tool in bash or zsh?",
        "enable shell completion",
        "click/shell-completion.html#enabling-completion",
    ),
    _q(
        "How do I show a progress bar while my command processes many items?",
        "progress bar",
        "click/utils.html#showing-progress-bars",
    ),
    _q(
        "How do I print coloured and bold text to the terminal?",
        "colored output",
        "click/utils.html#ansi-colors",
    ),
    _q(
        "Why is Click built on optparse and not on argparse?",
        "click vs argparse",
        "click/why.html#why-not-argparse",
    ),
    _q(
        "How can my command open the user's text editor and get back what they wrote?",
        "open editor for input",
        "click/utils.html#launching-editors",
    ),
    _q(
        "Which exceptions does Click raise, and how do they turn into an exit code?",
        "click exceptions exit codes",
        "click/exceptions.html#which-exceptions-exist",
    ),
)

# Messages these manuals do not answer, written for this set (not used by any development set).
OFF_TOPIC: dict[str, tuple[str, ...]] = {
    "other software": (
        "How do I roll back a deployment in Kubernetes?",
        "How do I create a pivot table in Excel?",
        "How do I change the default shell in macOS Terminal?",
        "How do I resize a partition with GParted?",
        "How do I write a for loop in Bash that skips hidden files?",
        "How can I speed up a slow PostgreSQL query with an index?",
        "How do I add a dependency to a Rust project with cargo?",
        "How do I set up two-factor authentication on my Google account?",
        "What is the difference between useEffect and useLayoutEffect in React?",
        "How do I export a video in Adobe Premiere Pro?",
        "How do I free up disk space used by Docker images?",
        "How do I reset a forgotten MySQL root password?",
        "How do I share my screen in a Zoom meeting?",
        "How do I make a bootable USB stick for Windows 11?",
        "How do I enable dark mode in Visual Studio Code?",
        "How do I write a Kotlin data class?",
        "How do I mirror my phone's screen to a TV?",
        "How do I configure a static IP address on a Raspberry Pi?",
        "How do I cherry-pick a commit in Mercurial?",
        "How do I set up a VLAN on a Cisco switch?",
    ),
    "general knowledge": (
        "How many legs does a spider have?",
        "What is the chemical symbol for gold?",
        "Who composed the Four Seasons?",
        "How long does it take to fly from London to New York?",
        "What is the best soil for growing tomatoes?",
        "Why do leaves change colour in autumn?",
        "How do I fix a leaking kitchen tap?",
        "What is the largest desert in the world?",
        "How many time zones does Russia have?",
        "How do I stop my glasses from fogging up?",
    ),
    "small talk": (
        "morning all",
        "anyone around?",
        "thanks, that fixed it",
        "lol ok",
        "Happy new year everyone!",
        "what's for lunch today?",
        "I'm off tomorrow, see you Monday",
        "great job on the release!",
        "can someone review my PR?",
        "is the coffee machine fixed yet?",
    ),
}
