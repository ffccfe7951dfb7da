"""Command-line plumbing shared by every script.

UserError marks a mistake in what the user gave us (a missing file, a bad flag, a checkpoint of
another shape). `run(main)` is how each script starts: it turns a UserError into one
"error: ..." line on stderr and exit status 2, and Ctrl-C into exit status 130, never a traceback.
ArgumentParser does the same for argparse's own errors.

A setting is written once: a config dataclass's field made with setting() carries its default,
help and choices, and add_config_flags turns it into a flag, so that a default cannot drift apart
from the help that states it.
"""
import argparse
import sys
from dataclasses import MISSING, field, fields


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


def setting(default, help, **flag):
    """A config field whose metadata documents its command-line flag (see add_config_flags): help,
    and optionally flag (its name when not --field-name), choices, and shown (the default as --help
    should say it, where the value alone would not)."""
    return field(default=default, metadata=dict(help=help, **flag))


def add_config_flags(parser, config_class):
    """One flag per field of config_class made with setting(): --field-name (or its own name), of
    the field's type (a bool: --flag / --no-flag), with its choices, and its help ending in
    "(default ...)" from the field's default. Every flag defaults to None, so that a caller can tell
    which ones were given (they override presets and a resumed run's settings)."""
    for f in fields(config_class):
        if "help" not in f.metadata:
            continue
        meta = f.metadata
        shown = meta.get("shown", f.default if f.default is not MISSING else None)
        if f.type is bool and "shown" not in meta:
            shown = "on" if f.default else "off"
        help_text = f"{meta['help']} (default {shown})".replace("%", "%%")   # argparse formats help with %
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if f.type is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=f.type, default=None, help=help_text,
                                choices=list(meta["choices"]) if "choices" in meta else None)
