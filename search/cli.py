"""The `srnas` command: one subcommand group per stage, each registered by its package."""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

from srnas.supernet.console import plain_warnings
from srnas.supernet.errors import UserError
from srnas.supernet.progress import end_bars
from srnas.supernet.writes import disk_full, is_full, torch_write_failed, write_failed

# Each module exposes register(subparsers); the order is the order of --help.
COMMAND_MODULES = [f"srnas.{m}" for m in ("supernet.cli", "search.latency_commands", "search.commands", "search.ablate",
                                           "search.stage3", "pruning.cli", "experiments.cli")]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="srnas", description="Latency-aware NAS + pruning search for real-time SR")
    parser.add_argument("--version", action="version", version=f"srnas {metadata.version('srnas')}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a missing dependency inside the module is a real error
                raise
            continue
        mod.register(sub)
    for cmd in _commands(sub):  # every command that reads a config takes overrides of it
        if any(a.dest == "config" for a in cmd._actions):
            cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="override a config value, validated like the file: --set latency.target=50ms "
                                  "(repeatable; lists as YAML: --set data.benchmarks=[Set5,Set14])")
            cmd.add_argument("--allow-foreign-lut", action="append_const", dest="set",
                             const="latency.allow_foreign_lut=true",
                             help="use a LUT of another device or executor (warns) instead of refusing it")
    return parser


def _commands(sub: argparse._SubParsersAction):
    """Every command parser, nested groups included (`srnas latency build` as well as `srnas run`)."""
    for cmd in sub.choices.values():
        yield cmd
        for action in cmd._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from _commands(action)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `srnas` console script."""
    args = build_parser().parse_args(argv)
    try:
        with plain_warnings():
            return int(args.func(args) or 0)
    except UserError as e:
        end_bars()
        print(f"srnas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # a full disk in a write no stage wrapped: said as such, without a traceback
        if not is_full(e):
            raise
        end_bars()
        print(f"srnas {args.command}: error: {disk_full(e.filename)}", file=sys.stderr)
        return 2
    except RuntimeError as e:   # torch's C++ writers fail without an errno
        if not torch_write_failed(e):
            raise
        end_bars()
        print(f"srnas {args.command}: error: {write_failed(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        end_bars()
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:  # under torchrun: leave the process group before exit (gloo threads alive at exit abort a rank)
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
