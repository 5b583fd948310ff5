"""Knowledge sources (local paths, websites, Git repositories) scanned into per-document changes."""
