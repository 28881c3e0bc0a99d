"""The `r1lab` command: one subcommand per stage.

    r1lab pipeline              R1-Zero and the four-stage R1 pipeline (embedded world, or --config naming yours)
    r1lab export-world DIR      the embedded world as data files + DIR/pipeline.yaml naming them
    r1lab zero                  R1-Zero: GRPO with rule rewards from the base model (embedded world by default)
    r1lab coldstart             cold-start data (few-shot, detailed, refined R1-Zero outputs)
    r1lab sft                   supervised fine-tuning on prompt/completion data
    r1lab sample                rejection sampling
    r1lab rm                    reward models (helpfulness, safety)
    r1lab distill               SFT a smaller student on the teacher's samples
    r1lab eval --model DIR      pass@1 / cons@k / format / length on held-out problems
    r1lab chat --model DIR      talk to a checkpoint in the terminal
    r1lab pretrain              rebuild the embedded base model from scratch
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import config as C
from .errors import UserError

# subcommands backed by a stage's settings dataclass: name -> (module, config class, function, help, description)
STAGES = {
    "zero": ("stages.grpo", "GRPOConfig", "train", "R1-Zero: GRPO with rule-based rewards from a base model",
             "R1-Zero: pure RL with GRPO and rule-based rewards (accuracy + format) from a base model, under the "
             "R1-Zero template. Evaluates the start and the final model on held-out problems."),
    "sft": ("stages.sft", "SFTConfig", "train",
            "supervised fine-tuning on prompt/completion JSONL (completion tokens only)",
            "SFT: loss on completion tokens only, padding-free packed batches, cosine learning rate, epochs. "
            "Works on any local Hugging Face causal LM."),
    "coldstart": ("stages.coldstart", "ColdStartConfig", "collect",
                  "collect cold-start long-CoT data (fewshot, detailed, refine)",
                  "Cold-start data by the paper's three methods; writes JSONL with a provenance field."),
    "sample": ("stages.sample", "SampleConfig", "rejection_sample",
               "rejection sampling: sample a checkpoint, keep correct readable answers",
               "Rejection sampling for R1 stage 3: n samples per prompt, keep correct, single-language, readable "
               "ones, dedupe, mix general-purpose data."),
    "rm": ("stages.reward_model", "RMConfig", "train",
           "train a reward model (helpfulness: pairwise; safety: pointwise)",
           "Reward model on the base model with a scalar head: Bradley-Terry on preference pairs (helpfulness) "
           "or binary cross-entropy (safety)."),
    "distill": ("stages.distill", "DistillConfig", "distill",
                "distillation: SFT a smaller student on the teacher's samples",
                "Distillation as in the paper: sample the teacher (rejection sampling), then SFT a smaller "
                "student on the kept samples; no RL."),
    "pretrain": ("stages.pretrain", "PretrainConfig", "pretrain", "pretrain the embedded base model from scratch",
                 "Pretrain the embedded world's tiny Llama from scratch on its synthetic web; `--out DIR` then "
                 "copy DIR/model/ to reproduce the shipped checkpoint."),
}


def _stage(name: str):
    """(config class, function) of a stage subcommand, imported on demand."""
    import importlib

    module, config, fn, _, _ = STAGES[name]
    mod = importlib.import_module(f".{module}", __package__)
    return getattr(mod, config), getattr(mod, fn)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="r1lab", description="Train language models the way DeepSeek-R1 was trained.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, _, help_, description) in STAGES.items():
        C.add_arguments(sub.add_parser(name, help=help_, description=description), _stage(name)[0])

    e = sub.add_parser("eval", help="evaluate a model on held-out problems (pass@1, cons@k, format, length)",
                       description="Evaluate as the paper does: k samples per problem at temperature 0.6, "
                                   "top-p 0.95; prints and writes pass@1, cons@k, pass@k, answer accuracy, "
                                   "format rate and mean length.")
    e.add_argument("--model", default="base", help="model folder, or 'base' (default: base)")
    e.add_argument("--task", default="toy", help="task (default: toy)")
    e.add_argument("--data", default=None, help="data file for file tasks")
    e.add_argument("--eval-data", default=None, help="held-out data file for file tasks")
    e.add_argument("--problems", type=int, default=200, help="held-out problems (default: 200)")
    e.add_argument("--k", type=int, default=4, help="samples per problem (default: 4)")
    e.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (default: 0.6)")
    e.add_argument("--top-p", type=float, default=0.95, help="top-p (default: 0.95)")
    e.add_argument("--max-new-tokens", type=int, default=160, help="token budget per sample (default: 160)")
    e.add_argument("--template", default="r1-zero", help="prompt template (default: r1-zero)")
    e.add_argument("--seed", type=int, default=1234, help="sampling seed (default: 1234)")
    e.add_argument("--out", default=None, help="write the metrics as JSON to this file")

    ch = sub.add_parser("chat", help="talk to a checkpoint in the terminal (streaming, thinking shown apart)",
                        description="Chat with a model folder: tokens stream as they are generated and the "
                                    "chain of thought is shown dimmed, apart from the answer.")
    ch.add_argument("--model", default="base", help="model folder, or 'base' (default: base)")
    ch.add_argument("--template", default="r1-zero", help="prompt template: r1-zero, plain or chat (default: r1-zero)")
    ch.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (default: 0.6)")
    ch.add_argument("--top-p", type=float, default=0.95, help="top-p (default: 0.95)")
    ch.add_argument("--max-new-tokens", type=int, default=256, help="token budget per answer (default: 256)")
    pl = sub.add_parser("pipeline", help="R1-Zero and the four-stage R1 pipeline, resumable, with a report",
                        description="base -> R1-Zero, and base -> cold-start SFT -> reasoning RL -> "
                                    "rejection-sampling SFT -> RL for all scenarios; each stage under --out; "
                                    "re-running resumes; ends with summary.json and report.md.")
    pl.add_argument("--out", default="runs/pipeline", help="output folder (default: runs/pipeline)")
    pl.add_argument("--config", default=None, help="YAML file: base model, language identifier, data sources and "
                                                   "stage settings (default: the embedded world's, "
                                                   "r1lab/configs/pipeline.yaml)")
    pl.add_argument("--jobs", type=int, default=0,
                    help="stages run at a time, each in a worker process with its share of the CPU threads "
                         "(default 0: 2 on a machine with no GPU and >= 2 CPU threads, outside torchrun; else 1)")
    ex = sub.add_parser("export-world", help="write the embedded world as data files and DIR/pipeline.yaml",
                        description="Write every data source of the embedded world (reasoning train and held-out "
                                    "sets, few-shot exemplars, general SFT data, refusals, preference pairs, "
                                    "safety labels, general and harmful prompts) as JSONL files, and "
                                    "DIR/pipeline.yaml naming them and the base model's folder.")
    ex.add_argument("dir", help="output folder")
    return p


class _Parser(argparse.ArgumentParser):
    """argparse that suggests the closest flag for an unknown one."""

    def error(self, message: str):
        import difflib

        if "unrecognized arguments:" in message:
            flags = [o for a in self._actions for o in a.option_strings]
            for sub in self._subparsers._group_actions if self._subparsers else []:
                for p in sub.choices.values():
                    flags += [o for a in p._actions for o in a.option_strings]
            unknown = message.split("unrecognized arguments:")[1].split()
            hints = [f"{u} (did you mean {c[0]}?)" for u in unknown if u.startswith("--")
                     for c in [difflib.get_close_matches(u.split("=")[0], flags, n=1)] if c]
            if hints:
                message += "; " + "; ".join(hints)
        super().error(message)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if hasattr(sys.stdout, "reconfigure"):  # one line per step shows up at once in a log file or a pipe too
        sys.stdout.reconfigure(line_buffering=True)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _run(args)
    except UserError as e:
        if args.debug:
            raise
        print(f"r1lab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nr1lab {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _run(args) -> int:
    if args.command in STAGES:
        config, fn = _stage(args.command)
        fn(C.from_namespace(config, args))
        return 0
    if args.command == "eval":
        return _eval(args)
    if args.command == "chat":
        from .chat import chat

        chat(args.model, args.template, args.temperature, args.top_p, args.max_new_tokens)
        return 0
    if args.command == "pipeline":
        from .pipeline import Pipeline, load_config

        Pipeline(args.out, load_config(args.config)).run(args.jobs)
        return 0
    if args.command == "export-world":
        from .api import export_world

        print(f"wrote the embedded world to {args.dir}; run it with: r1lab pipeline --config "
              f"{export_world(args.dir)} --out DIR")
        return 0
    raise UserError(f"unknown command {args.command!r}")


def _eval(args) -> int:
    from .checkpoint import write_json
    from .evaluate import EvalConfig, evaluate_folders
    from .stages.grpo import _eval_line
    from .tasks import load_task

    for name in ("problems", "k", "max_new_tokens"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    task = load_task(args.task, args.data, args.eval_data, args.problems)
    cfg = EvalConfig(k=args.k, temperature=args.temperature, top_p=args.top_p,
                     max_new_tokens=args.max_new_tokens, template=args.template, seed=args.seed)
    metrics = evaluate_folders({str(args.model): args.model}, task, cfg, keep_samples=3)[str(args.model)]
    print(_eval_line(str(args.model), metrics))
    for s in metrics.get("samples", []):
        print(f"  Q: {s['prompt']}\n  A: {s['completion'][:300]}")
    if args.out:
        write_json(Path(args.out), metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
