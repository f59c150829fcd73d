"""Demo parties bundled with the package (registered as `jupyter_party.parties` entry points)."""
