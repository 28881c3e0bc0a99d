"""Distillation: SFT a smaller student on samples from the final model (paper section 4: SFT only,
no RL, on R1's 800K samples).

    r1lab distill --teacher runs/pipeline/r1/model --out runs/distill            # student: the small base
    r1lab distill --teacher DIR --student /path/to/small-hf-model --out runs/distill

The loop is the rejection-sampling stage run on the teacher (correct, readable, single-language
samples, plus general-purpose data), then the SFT stage on the student; under torchrun both are
data parallel (each process samples and trains on its share; rank 0 writes). The embedded world ships a
small base model for this (`r1lab/assets/base-small`: 0.36M parameters, width 96, 3 layers, pretrained
like the base on the same corpus; `pretrain_config.json` there has its settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import opt
from ..model import ASSETS
from .sample import SampleConfig, rejection_sample
from .sft import SFTConfig
from .sft import train as sft_train

SMALL_BASE = ASSETS / "base-small"


@dataclass
class DistillConfig:
    teacher: str = opt("", "teacher model folder (R1: the final model of the pipeline)")
    student: str = opt("small", "student model folder, or 'small' for the embedded small base model")
    out: str = opt("runs/distill", "output folder: data.jsonl, the student's checkpoints and model/")
    task: str = opt("toy", "prompt source of the teacher's samples")
    data: str | None = opt(None, "prompt file for file-backed tasks")
    prompts: int = opt(800, "prompts sampled from the teacher")
    samples: int = opt(2, "teacher samples per prompt")
    keep_per_prompt: int = opt(1, "kept samples per prompt at most")
    general: int = opt(300, "general-purpose examples mixed in (the first N of --general-data, or the embedded world's)")
    general_data: str = opt("", "general-purpose SFT data, rows with prompt and completion (empty: the embedded world's)")
    safety: int = opt(60, "refusals mixed in (the first N of --safety-data, or the embedded world's; 0 = none)")
    safety_data: str = opt("", "refusals / safety SFT data, rows with prompt and completion (empty: the embedded world's)")
    language: str = opt("toy", "language identifier of the single-language filter: 'toy', 'lingua:en,es' or 'lingua'")
    epochs: int = opt(3, "student SFT epochs (paper: 2-3)")
    lr: float = opt(1e-3, "student peak learning rate (cosine decay to a tenth, as in the paper)")
    seed: int = opt(0, "seed")
    eval_problems: int = opt(200, "held-out problems to evaluate the student before/after and the teacher (0 = skip)")
    eval_k: int = opt(4, "samples per held-out problem (temperature 0.6, top-p 0.95)")


def distill(cfg: DistillConfig) -> Path:
    from ..errors import UserError

    if not cfg.teacher:
        raise UserError("--teacher is required: the model folder to distill from")
    out = Path(cfg.out)
    data = out / "data.jsonl"
    if not data.is_file():
        rejection_sample(SampleConfig(model=cfg.teacher, task=cfg.task, data=cfg.data, out=str(data),
                                      prompts=cfg.prompts, samples=cfg.samples, keep_per_prompt=cfg.keep_per_prompt,
                                      general=cfg.general, general_data=cfg.general_data, safety=cfg.safety,
                                      safety_data=cfg.safety_data, language=cfg.language, seed=cfg.seed))
    student = str(SMALL_BASE) if cfg.student == "small" else cfg.student
    final = sft_train(SFTConfig(model=student, data=str(data), out=str(out), epochs=cfg.epochs, lr=cfg.lr,
                                seed=cfg.seed, save_every=20))
    if cfg.eval_problems:
        _compare(cfg, {"student (before)": student, "student (distilled)": str(final), "teacher": cfg.teacher}, out)
    return final


def _compare(cfg: DistillConfig, models: dict[str, str], out: Path) -> None:
    """Held-out reasoning evaluation of the student before and after, and of the teacher."""
    from .. import dist
    from ..checkpoint import write_json
    from ..evaluate import EvalConfig, evaluate_folders
    from ..tasks import load_task
    from .grpo import eval_table

    results = evaluate_folders(models, load_task(cfg.task, cfg.data, None, cfg.eval_problems), EvalConfig(k=cfg.eval_k))
    if dist.init()[0].main:
        write_json(out / "eval.json", results)
        print(eval_table(results))
