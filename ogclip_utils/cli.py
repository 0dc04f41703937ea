"""Command line: ``python -m ogclip_utils <command> [options]``.

Each command lives in the module of its idea; this file only dispatches (lazily, so
``--help`` is fast and a missing optional dependency only affects its own command).
"""
from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, function, one-line help)
    "segment": ("ogclip_utils.explain", "cli_segment", "segment / edit one image with a vocabulary"),
    "explain": ("ogclip_utils.explain", "cli_explain", "write the 18-step explanatory HTML viewer"),
    "ground": ("ogclip_utils.grounding", "main", "baseline grounding: referring expression -> box, Acc@0.5"),
    "benchmark": ("ogclip_utils.benchmark", "main", "evaluate dense / refined segmentation on a dataset"),
    "train": ("ogclip_utils.og_clip", "cli_train", "train Object-Guided CLIP"),
    "evaluate": ("ogclip_utils.og_clip", "cli_evaluate", "evaluate Object-Guided CLIP retrieval"),
    "train-tiny-clip": ("ogclip_utils.tiny_clip", "main", "retrain the offline tiny-shapes CLIP"),
    "checkpoints": ("ogclip_utils.models", "cli_checkpoints", "download real-mode weights"),
}


def usage() -> str:
    lines = ["usage: python -m ogclip_utils <command> [options]", "", "commands:"]
    lines += [f"  {n:16s} {h}" for n, (_, _, h) in COMMANDS.items()]
    lines += ["", "`python -m ogclip_utils <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[cmd]
    fn = getattr(importlib.import_module(module), func)
    return int(fn(rest) or 0)
