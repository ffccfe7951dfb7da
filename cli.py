"""Command-line plumbing shared by every script.

UserError marks a mistake in what the user gave us (a missing file, a bad flag, a checkpoint of
another shape). `run(main)` is how each script starts: it turns a UserError into one
"error: ..." line on stderr and exit status 2, and Ctrl-C into exit status 130, never a traceback.
ArgumentParser does the same for argparse's own errors.
"""
import argparse
import sys


class UserError(Exception):
    """Bad input from the user; reported as a single line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one 'error: ...' line and exit status 2, like every other
    mistake (argparse's own adds a usage block; --help still shows it)."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def run(main, argv=None):
    """Call a script's main(argv) as its command line: UserError -> one line and exit 2,
    KeyboardInterrupt -> exit 130 (what a shell reports for Ctrl-C)."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
