"""Command-line plumbing shared by every script.

UserError marks a mistake in what the user gave us (a missing file, a bad flag, a checkpoint of
another shape). `run(main)` is how each script starts: it turns a UserError, and a file that
cannot be written (a full disk, a read-only folder), into one "error: ..." line on stderr and exit
status 2, Ctrl-C into exit status 130 and SIGTERM into 143, never a traceback.
ArgumentParser does the same for argparse's own errors.

A setting is written once: a config dataclass's field made with setting() carries its default,
help and choices, and add_config_flags turns it into a flag, so that a default cannot drift apart
from the help that states it. config_file_flags reads the same flags from a TOML file (train.py
--config), each by its name.
"""
import argparse
import difflib
import errno
import json
import signal
import sys
import tomllib
from dataclasses import MISSING, field, fields


class UserError(Exception):
    """Bad input from the user; reported as a single line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one 'error: ...' line and exit status 2, like every other
    mistake (argparse's own adds a usage block; --help still shows it). A flag may be spelled with
    underscores, --d_model for --d-model, as a --config file and the config fields spell it; an
    unknown flag's error names the closest real one."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self.hyphenated(sys.argv[1:] if args is None else args), namespace)

    def parse_args(self, args=None, namespace=None):
        args, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}{self.suggestion(unknown)}")
        return args

    def hyphenated(self, argv):
        """argv with each --name_with_underscores, alone or as --name_with_underscores=VALUE, spelled
        as the flag --name-with-underscores where that flag exists (and the underscored one does not);
        nothing after a bare --, which ends the flags."""
        argv = list(argv)
        for i, arg in enumerate(argv):
            if arg == "--":
                break
            name, equals, value = arg.partition("=")
            spelled = name.replace("_", "-")
            if name.startswith("--") and name not in self._option_string_actions and spelled in self._option_string_actions:
                argv[i] = spelled + equals + value
        return argv

    def suggestion(self, unknown):
        """' (did you mean --xyz?)' for the first unknown flag when a real one is close to it, else ''."""
        flags = [flag for flag in self._option_string_actions if flag.startswith("--")]
        for arg in unknown:
            if arg.startswith("--"):
                close = difflib.get_close_matches(arg.partition("=")[0].replace("_", "-"), flags, n=1)
                return f" (did you mean {close[0]}?)" if close else ""
        return ""


class Terminated(Exception):
    """The process was asked to stop by SIGTERM (and has stopped cleanly): exit status 143."""


# a file that cannot be written for want of room, or opened for want of permission: the user's
# to fix, not a bug
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
NO_PERMISSION = (errno.EACCES, errno.EPERM)


def storage_error(error):
    """The one line for an OSError of NO_ROOM or NO_PERMISSION, or None for any other exception."""
    if isinstance(error, OSError) and error.errno in NO_ROOM + NO_PERMISSION:
        verb = "cannot write" if error.errno in NO_ROOM else "cannot open"
        return f"{verb} {error.filename or 'a file'}: {error.strerror}"
    return None


def terminate(signum, frame):
    raise Terminated()


def run(main, argv=None):
    """Call a script's main(argv) as its command line: UserError or a storage error -> one line and
    exit 2, KeyboardInterrupt -> exit 130 (what a shell reports for Ctrl-C), SIGTERM -> 143 (as it
    would be unhandled, but after `finally` blocks have run: no temporary file is left behind)."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_IGN:   # started with SIGTERM ignored: it stays ignored
        signal.signal(signal.SIGTERM, terminate)
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if not storage_error(e):
            raise
        print(f"error: {storage_error(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Terminated:
        sys.exit(143)
    finally:
        signal.signal(signal.SIGTERM, previous)


def given_run(positional, ckpt, script, many=False):
    """The run (or runs, for eval.py) a script reads: given as RUN, or after --ckpt (generate.py's
    older spelling), once; otherwise a one-line error."""
    if positional and ckpt:
        raise UserError("the run is given twice, as RUN and after --ckpt: give it once, not both")
    if not (positional or ckpt):
        raise UserError(f"the following arguments are required: {'runs' if many else 'run'} (a run directory, "
                        f"checkpoint file or export folder: {script} RUN{' ...' if many else ''})")
    return positional or ckpt


def setting(default, help, **flag):
    """A config field whose metadata documents its command-line flag (see add_config_flags): help,
    and optionally flag (its name when not --field-name), choices, shown (the default as --help
    should say it, where the value alone would not) and group (the section of --help it is listed in)."""
    return field(default=default, metadata=dict(help=help, **flag))


def add_config_flags(parser, config_class, groups=None, group=None):
    """One flag per field of config_class made with setting(): --field-name (or its own name), of
    the field's type (a bool: --flag / --no-flag), with its choices, and its help ending in
    "(default ...)" from the field's default. Every flag defaults to None, so that a caller can tell
    which ones were given (they override presets and a resumed run's settings). groups: {name:
    argument group of parser}; a flag is listed in the one its setting names, or else in `group`'s,
    and where there is none such, among the parser's own options."""
    for f in fields(config_class):
        if "help" not in f.metadata:
            continue
        meta = f.metadata
        target = (groups or {}).get(meta.get("group", group), parser)
        shown = meta.get("shown", f.default if f.default is not MISSING else None)
        if f.type is bool and "shown" not in meta:
            shown = "on" if f.default else "off"
        help_text = f"{meta['help']} (default {shown})".replace("%", "%%")   # argparse formats help with %
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if f.type is bool:
            target.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            target.add_argument(flag, dest=f.name, type=f.type, default=None, help=help_text,
                                choices=list(meta["choices"]) if "choices" in meta else None)


def config_file_flags(parser, path):
    """The flags a TOML file sets, as command-line arguments for parser: each key is a flag's name
    (d-model, d_model or the field's name, pos_encoding for --pos); true/false for an on/off flag."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except OSError as e:
        raise UserError(f"--config: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"--config: {path} is not valid TOML: {e}") from None
    flags = {}   # every spelling of a flag's name -> (its flag, its action)
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and not flag.startswith("--no-") and flag not in ("--help", "--config"):
                for name in (flag[2:], flag[2:].replace("-", "_"), action.dest):
                    flags[name] = (flag, action)
    argv = []
    for key, value in table.items():
        if key not in flags:
            close = difflib.get_close_matches(key.replace("_", "-"), [f[2:] for f, _ in flags.values()], n=1)
            raise UserError(f"--config: {path} sets {key!r}, which is no flag of {parser.prog}"
                            + (f" (did you mean --{close[0]}?)" if close else ""))
        flag, action = flags[key]
        if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction)):
            if not isinstance(value, bool):
                raise UserError(f"--config: {path} sets {key} = {value!r}: {flag} takes true or false")
            argv += [flag] if value else ([f"--no-{flag[2:]}"] if isinstance(action, argparse.BooleanOptionalAction) else [])
        else:
            argv += [flag, str(value)]
    return argv


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)   # a JSON string is a TOML basic string
    return repr(value)
