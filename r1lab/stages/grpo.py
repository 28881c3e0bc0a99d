"""GRPO: reinforcement learning with group-relative advantages and rule-based rewards.

    r1lab zero                                   # R1-Zero on the embedded world (base model -> RL)
    r1lab zero --model DIR --data train.jsonl --out runs/mine
    r1lab zero --reward-fn my_rewards.py:mine --rewards accuracy=1,format=0.5,mine=1

Each step reads top to bottom in `train`:
  1. take P prompts (seeded data order) and render them with the template;
  2. roll out G samples per prompt (prefix computed once per prompt, KV cache, temperature, top-p);
  3. score every sample with the weighted rule rewards;
  4. advantages A_i = (r_i - mean(group)) / std(group);  [DAPO: drop zero-spread groups and refill]
  5. mu updates on the clipped surrogate + beta * k3 KL to the frozen reference;
  6. log, reset the reference every N steps, checkpoint every K steps.
No critic, no neural reward model: this is DeepSeek-R1-Zero's recipe (paper section 2).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import dist, parallel
from ..config import check_positive, opt, to_dict
from ..dist import World
from ..engine import SamplingParams, sample
from ..errors import UserError
from ..evaluate import EvalConfig, evaluate
from ..forward import completion_logits, cut, frozen_logprobs, micro_batches, sequences
from ..logs import MetricsLog, check_report_to
from ..losses import LOSS_AGGREGATIONS, group_advantages, grpo_loss, token_entropy, token_logprobs
from ..model import autocast, decode_completions, load_model, load_tokenizer, resolve_model_path, save_model
from ..rewards import REWARDS, RewardRunner, load_reward_fns, parse_spec
from ..tasks import load_task
from ..template import render_prompt


@dataclass
class GRPOConfig:
    model: str = opt("base", "start model: a local Hugging Face folder, or 'base' for the embedded base model")
    task: str = opt("toy", "prompt source + verifier: 'toy' (embedded world), a library task (gsm8k, math, countdown, "
                    "code), or your own as PATH.py:NAME")
    data: str | None = opt(None, "training data: JSONL, Parquet or a save_to_disk folder, rows with prompt and answer "
                           "(alone: your data; with a library task: its rows)")
    eval_data: str | None = opt(None, "held-out data file (default: the last examples of --data are held out)")
    out: str = opt("runs/zero", "output folder: metrics.jsonl, TensorBoard events, eval.json, checkpoints/, model/")
    seed: int = opt(0, "seed of the data order and of sampling (per prompt)")
    steps: int = opt(60, "optimizer steps (rollout batches)")
    prompts_per_step: int = opt(16, "prompts per step (P)")
    group_size: int = opt(8, "samples per prompt (G); the batch is P x G sequences")
    max_new_tokens: int = opt(128, "token budget of each sample")
    temperature: float = opt(1.0, "rollout sampling temperature (paper: 1.0)")
    top_p: float = opt(1.0, "rollout nucleus sampling")
    template: str = opt("r1-zero", "prompt template: 'r1-zero' (paper Table 1), 'plain', or 'chat' (tokenizer's)")
    rewards: str = opt("accuracy=1,format=0.5", "weighted rewards, name=weight,...: accuracy, format, language (the toy "
                       "lexicon), language_lingua (real text; r1lab[lang]), and the names of --reward-fn functions")
    reward_fn: list[str] = opt([], "your reward function, PATH.py:NAME or module:NAME, fn(completions, examples) -> "
                               "list[float | None]; registered as NAME for --rewards (repeatable)")
    reward_workers: int = opt(0, "worker processes that run the reward functions (0 = in the training process)")
    reward_timeout: float = opt(60.0, "seconds a reward call may take in a worker before its samples score 0 and "
                                "count as reward_errors (--reward-workers > 0; 0 = no limit)")
    lr: float = opt(1e-4, "AdamW learning rate (constant after warmup)")
    warmup_steps: int = opt(0, "steps of linear learning-rate warmup")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    grad_clip: float = opt(1.0, "gradient norm clip (0 = off)")
    beta: float = opt(0.01, "coefficient of the k3 KL to the reference, in the loss (0 = no reference model)")
    eps_low: float = opt(0.2, "clip range below 1 for the probability ratio")
    eps_high: float = opt(0.2, "clip range above 1 (DAPO's clip-higher: e.g. 0.28)")
    updates_per_batch: int = opt(1, "mu: optimizer updates per rollout batch against pi_old")
    ref_reset_every: int = opt(400, "reset the reference to the policy every N steps (R1-Zero: 400; 0 = never)")
    loss_agg: str = opt("seq-mean", "loss aggregation: seq-mean (paper), token-mean (DAPO), dr-grpo (constant "
                        "normaliser, advantages not divided by std)", list(LOSS_AGGREGATIONS))
    dynamic_sampling: bool = opt(False, "DAPO: drop groups whose rewards are all equal and refill with new prompts")
    max_refill_rounds: int = opt(3, "dynamic sampling: extra rollout rounds per step at most")
    overlong_filter: bool = opt(False, "DAPO: mask truncated samples (no EOS within budget) out of the loss")
    rollout: str = opt("hf", "rollout engine: 'hf' (r1lab's engine on the training model) or 'vllm' (a colocated "
                       "vLLM engine, CUDA only, weights synced after each update)", ["hf", "vllm"])
    vllm_gpu_memory: float = opt(0.3, "--rollout vllm: share of the GPU's memory vLLM takes (weights + KV cache)")
    micro_batch: int = opt(64, "sequences per forward/backward pass (memory knob; the math does not change)")
    lora_rank: int = opt(0, "train LoRA adapters of this rank on every linear layer (PEFT); 0 = all weights")
    lora_alpha: float = opt(0.0, "LoRA scaling alpha (0 = 2 x rank)")
    activation_checkpointing: bool = opt(False, "recompute activations in backward (less memory, more compute)")
    fsdp: bool = opt(False, "shard the model with FSDP2 across the torchrun processes (for models that do not fit)")
    eval_problems: int = opt(200, "held-out problems evaluated before and after training (0 = skip)")
    eval_k: int = opt(4, "samples per held-out problem (pass@1 over k, cons@k)")
    eval_temperature: float = opt(0.6, "evaluation sampling temperature (paper: 0.6)")
    eval_top_p: float = opt(0.95, "evaluation top-p (paper: 0.95)")
    eval_max_new_tokens: int = opt(144, "evaluation token budget per sample")
    report_to: str = opt("terminal,jsonl,tensorboard", "where step metrics go, comma-separated: terminal, jsonl "
                         "(OUT/metrics.jsonl), tensorboard, wandb (r1lab[wandb]; WANDB_MODE=offline works), or none")
    save_every: int = opt(0, "checkpoint every N steps (0 = only at the end)")
    keep_last: int = opt(2, "checkpoints kept (0 = all)")
    precision: str = opt("auto", "bf16 autocast where fast ('auto'), 'fp32' or 'bf16'", ["auto", "fp32", "bf16"])
    device: str = opt("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    threads: int = opt(0, "torch CPU threads (0 = default)")
    max_nonfinite: int = opt(3, "stop after this many steps in a row whose update was skipped for NaN/inf")


# settings that do not change the math of the run: it may be resumed with different values (device,
# threads and micro_batch can change float rounding, and so a sampled token here and there, as
# resuming on another machine would; the exact-resume guarantee is for the same machine and settings)
_RESUMABLE = {"out", "steps", "save_every", "keep_last", "eval_problems", "eval_k", "eval_temperature",
              "eval_top_p", "eval_max_new_tokens", "threads", "micro_batch", "device", "max_nonfinite",
              "vllm_gpu_memory", "reward_workers", "reward_timeout", "report_to"}
# `rollout` is not among them: vLLM's samples differ from the HF engine's (other kernels, other random
# streams), so a run resumed on the other engine would not be the run it claims to continue


def check_config(cfg: GRPOConfig) -> None:
    check_positive(cfg, ["steps", "prompts_per_step", "group_size", "max_new_tokens", "updates_per_batch",
                         "micro_batch", "eval_k", "eval_max_new_tokens", "lr", "max_nonfinite"])
    check_positive(cfg, ["eval_problems", "save_every", "keep_last", "warmup_steps", "ref_reset_every",
                         "threads", "max_refill_rounds", "beta", "eps_low", "eps_high", "grad_clip",
                         "weight_decay"],
                   allow_zero=("eval_problems", "save_every", "keep_last", "warmup_steps", "ref_reset_every",
                               "threads", "max_refill_rounds", "beta", "grad_clip", "weight_decay",
                               "eps_low", "eps_high"))
    if cfg.temperature <= 0:
        raise UserError("--temperature must be > 0 for GRPO rollouts: greedy samples of a prompt are all the same, "
                        "so a group has no reward spread and no advantage (paper: 1.0)")
    if cfg.group_size < 2:
        raise UserError("--group-size must be >= 2: advantages compare samples within a group")
    if not 0 < cfg.top_p <= 1 or not 0 < cfg.eval_top_p <= 1:
        raise UserError("--top-p and --eval-top-p must be in (0, 1]")
    if cfg.rollout == "vllm":
        from ..rollout_vllm import check_available

        check_available()
        if cfg.fsdp:
            raise UserError("--rollout vllm with --fsdp is not supported (vLLM is colocated in one process)")
        if not 0 < cfg.vllm_gpu_memory < 1:
            raise UserError("--vllm-gpu-memory must be in (0, 1)")


@dataclass
class Batch:
    """One step's rollouts, grouped: the G samples of prompt p are rows p*G .. p*G+G-1."""

    examples: list[dict]  # [P*G] the example each row answers
    prompt_ids: list[list[int]]  # [P*G]
    completion_ids: list[list[int]]  # [P*G] EOS included when the sample stopped
    texts: list[str]  # [P*G] decoded completions (EOS removed)
    truncated: list[bool]  # [P*G]
    rewards: torch.Tensor  # [P*G] weighted total
    parts: dict[str, list[float]]  # reward name -> [P*G]
    reward_errors: int = 0
    t_gen: float = 0.0  # seconds generating
    t_reward: float = 0.0  # seconds scoring


def sample_seed(seed: int, step: int, round_: int, index: int) -> int:
    """The sampling seed of one prompt: fixed by (seed, step, refill round, position in the batch)."""
    return zlib.crc32(f"{seed}|{step}|{round_}|{index}".encode())


def rollout(model, tokenizer, examples: list[dict], cfg: GRPOConfig, step: int, round_: int, weights,
            reward_fns, prompt_cache: dict, amp, offset: int = 0, sync=None) -> Batch:
    """Generate G samples for each example and score them. `offset` is the position of the first
    example in the global batch (its sampling seed does not depend on which process samples it).
    `model` is the policy or an inference engine (engine.sample); `sync` as in engine.generate."""
    prompts = []
    for ex in examples:
        key = ex["prompt"]
        if key not in prompt_cache:
            prompt_cache[key] = tokenizer(render_prompt(key, cfg.template, tokenizer), add_special_tokens=False)["input_ids"]
        prompts.append(prompt_cache[key])
    seeds = [sample_seed(cfg.seed, step, round_, offset + i) for i in range(len(examples))]
    t0 = time.perf_counter()
    params = SamplingParams(cfg.max_new_tokens, cfg.temperature, cfg.top_p)
    out = sample(model, prompts, cfg.group_size, params, seeds, eos_id=tokenizer.eos_token_id,
                 pad_id=tokenizer.pad_token_id, autocast=amp, sync=sync)
    G = cfg.group_size
    rows = [ex for ex in examples for _ in range(G)]
    texts = decode_completions(tokenizer, out.completions)
    t1 = time.perf_counter()
    scores = reward_fns.score(texts, rows, weights)
    return Batch(examples=rows, prompt_ids=[p for p in prompts for _ in range(G)], completion_ids=out.completions,
                 texts=texts, truncated=out.truncated, rewards=torch.tensor(scores.total), parts=scores.parts,
                 reward_errors=scores.errors, t_gen=t1 - t0, t_reward=time.perf_counter() - t1)


ROW_FIELDS = ("examples", "prompt_ids", "completion_ids", "texts", "truncated")  # Batch's per-row lists


def concat(batches: list[Batch]) -> Batch:
    """Batches one after the other (DAPO's refill rounds); counts and seconds add up."""
    return Batch(**{f: sum((getattr(b, f) for b in batches), []) for f in ROW_FIELDS},
                 rewards=torch.cat([b.rewards for b in batches]),
                 parts={k: sum((b.parts[k] for b in batches), []) for k in batches[0].parts},
                 **{f: sum(getattr(b, f) for b in batches) for f in ("reward_errors", "t_gen", "t_reward")})


def select_groups(batch: Batch, groups: list[int], G: int) -> Batch:
    """The rows of the given groups, in that order; counts and seconds are the batch's."""
    rows = [g * G + j for g in groups for j in range(G)]
    return dataclasses.replace(batch, **{f: [getattr(batch, f)[i] for i in rows] for f in ROW_FIELDS},
                               rewards=batch.rewards[rows], parts={k: [v[i] for i in rows] for k, v in batch.parts.items()})


def lr_lambda(cfg: GRPOConfig):
    return lambda step: min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0


def run_identity(cfg: GRPOConfig) -> dict:
    return {k: v for k, v in to_dict(cfg).items() if k not in _RESUMABLE}


@dataclass
class Run:
    """Everything a GRPO run holds between steps (built by `setup`, fresh or from a checkpoint)."""

    cfg: GRPOConfig
    out: Path
    task: object
    prompts: object  # anything with .batch(step, n, seed)
    reward_fns: RewardRunner  # scores batches with the named rewards (in workers with --reward-workers)
    weights: dict
    tokenizer: object
    model: object
    ref: object | None
    ref_is_start: bool  # the reference is still the start model (not stored in checkpoints)
    optimizer: object
    scheduler: object
    amp: object
    device: object
    start: int
    results: dict
    eval_cfg: EvalConfig
    language_fn: object
    world: World
    gen: object | None  # the vLLM engine when it generates rollouts instead of the policy:
    # .model generates, .refresh(policy) syncs it after each update, .close() releases it
    sync: object | None = None  # FSDP2: engine.generate's sync (every process takes part in each forward)
    param_bytes: tuple[int, int] = (0, 0)  # (this process's, one unsharded copy's) policy + reference bytes
    log: object | None = None  # the MetricsLog (rank 0), once the steps start

    def close(self) -> None:
        """Release what the run holds outside this process's memory: the metrics writers
        (TensorBoard, W&B), the reward worker processes and the vLLM engine's GPU memory."""
        try:
            if self.log is not None:
                self.log.close()
            self.reward_fns.close()
        finally:
            if self.gen is not None:
                self.gen.close()


def setup(cfg: GRPOConfig, extra_rewards: dict | None, prompt_source, task=None) -> Run:
    """Validate, load, and resume from the last complete checkpoint of the same run in cfg.out."""
    check_config(cfg)
    check_positive(cfg, ["reward_workers", "reward_timeout"], allow_zero=("reward_workers", "reward_timeout"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    reward_fns = REWARDS | load_reward_fns(cfg.reward_fn) | (extra_rewards or {})
    weights = parse_spec(cfg.rewards, reward_fns)
    check_report_to(cfg.report_to)
    task = task if task is not None else load_task(cfg.task, cfg.data, cfg.eval_data, cfg.eval_problems)
    world, device = dist.init(cfg.device)
    dist.shard(list(range(cfg.prompts_per_step)), world)  # fails early when P does not split evenly
    if world.size > 1 and cfg.dynamic_sampling:
        raise UserError("--dynamic-sampling is single-process only for now (refills would differ per process)")
    if cfg.fsdp and not world.distributed:
        raise UserError("--fsdp shards the model across processes: launch with torchrun --nproc_per_node N")
    if cfg.fsdp and cfg.lora_rank:
        raise UserError("--fsdp with --lora-rank is not supported: the adapters are small, use plain data parallel")
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, device=device)
    check_context(task, tokenizer, model, cfg)
    start, state = 0, None
    out.mkdir(parents=True, exist_ok=True)
    last = ckpt.latest(out)
    if last is not None:
        state, meta = ckpt.load_state(last)
        if meta.get("identity") != run_identity(cfg):
            old = meta.get("identity", {})
            changed = sorted(k for k in run_identity(cfg) if old.get(k) != run_identity(cfg)[k])
            raise UserError(f"{out} holds checkpoints of a different run (settings differ: {', '.join(changed)}); "
                            "use another --out or delete that folder")
        model = parallel.load_lora(model, last) if cfg.lora_rank else load_model(last, device=device)
        start = meta["step"] + 1
        if world.main:
            print(f"resuming from {last} (step {meta['step']})")
    elif cfg.lora_rank:
        model = parallel.add_lora(model, cfg.lora_rank, cfg.lora_alpha)
    previous = ckpt.read_json(out / "config.json")
    same_run = bool(previous) and {k: v for k, v in previous.items() if k not in _RESUMABLE} == run_identity(cfg)
    results = ckpt.read_json(out / "eval.json") if same_run else {}  # another run's evaluation is not ours
    dist.barrier(world)  # every process has read the old config before rank 0 rewrites it
    if world.main:
        ckpt.write_json(out / "config.json", to_dict(cfg), sort_keys=True)

    # the reference: a frozen copy of the start model (with LoRA: the adapter switched off, no copy,
    # until a reset makes it a frozen copy of the merged policy)
    ref = None
    if cfg.beta > 0 and (not cfg.lora_rank or (state and state.get("ref") is not None)):
        ref = (load_model(cfg.model, device=device) if cfg.lora_rank else copy.deepcopy(model)).eval().requires_grad_(False)
        if state is not None and state.get("ref") is not None:
            ref.load_state_dict(state["ref"])
        elif start > 0:
            ref.load_state_dict(load_model(cfg.model, device=device).state_dict())
    gen = None
    if cfg.activation_checkpointing:
        parallel.enable_checkpointing(model)
    if cfg.rollout == "vllm":
        gen = _VLLMActor(cfg, model, start)
    try:
        unsharded = parallel.local_bytes(model, ref)
        if cfg.fsdp:  # the reference is sharded like the policy; rollouts and evaluation run on the sharded
            parallel.shard(model)  # policy (FSDP2 gathers one layer at a time), no full replica anywhere
            if ref is not None:
                parallel.shard(ref)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
        if state is not None:
            parallel.load_optimizer_state(model, optimizer, state["optimizer"], cfg.fsdp)
            scheduler.load_state_dict(state["scheduler"])
            ckpt.set_rng_state(state["rng"])
        eval_cfg = EvalConfig(k=cfg.eval_k, temperature=cfg.eval_temperature, top_p=cfg.eval_top_p,
                              max_new_tokens=cfg.eval_max_new_tokens, template=cfg.template)
        sync = (lambda running: dist.any_true(running, world)) if cfg.fsdp else None
        runner = RewardRunner(reward_fns, cfg.reward_workers, cfg.reward_timeout)
        return Run(cfg, out, task, prompt_source or task.train, runner, weights, tokenizer, model, ref,
                   state is None or state.get("ref") is None, optimizer, scheduler, autocast(device, cfg.precision),
                   device, start, results, eval_cfg, REWARDS["language"] if task.name == "toy" else None, world, gen,
                   sync, (parallel.local_bytes(model, ref), unsharded))
    except BaseException:
        if gen is not None:  # the engine holds GPU memory: a failed setup must not leave it running
            gen.close()
        raise


class _VLLMActor:
    """--rollout vllm: a vLLM engine started from the policy's weights and refreshed after each update."""

    def __init__(self, cfg: GRPOConfig, policy, start: int):
        from ..rollout_vllm import VLLMRollout

        limit = getattr(policy.config, "max_position_embeddings", None) or 4096
        self.model = VLLMRollout(str(resolve_model_path(cfg.model)), gpu_memory_utilization=cfg.vllm_gpu_memory,
                                 max_model_len=limit, seed=cfg.seed)
        if start > 0 or cfg.lora_rank:  # resumed (or adapters added): vLLM must sample the current policy
            self.refresh(policy)

    def refresh(self, policy) -> None:
        self.model.refresh(parallel.merged_copy(policy) if hasattr(policy, "peft_config") else policy)

    def close(self) -> None:
        self.model.close()


def check_context(task, tokenizer, model, cfg: GRPOConfig) -> None:
    """Every prompt plus the token budgets must fit the model's context; say which one does not."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if not limit:
        return
    budget = max(cfg.max_new_tokens, cfg.eval_max_new_tokens if cfg.eval_problems else 0)
    for source, examples in (("training data", task.train.examples), ("evaluation data", task.eval_examples)):
        if not examples:
            continue
        texts = [render_prompt(ex["prompt"], cfg.template, tokenizer) for ex in examples]
        for ex, ids in zip(examples, tokenizer(texts, add_special_tokens=False)["input_ids"]):
            if len(ids) + budget > limit:
                where = f"{cfg.data or cfg.eval_data or source}:{ex.get('_line', '?')}"
                raise UserError(f"{where}: prompt is {len(ids)} tokens; with a budget of {budget} new tokens it "
                                f"exceeds the model's context of {limit} tokens (shorten the prompt or lower "
                                f"--max-new-tokens / --eval-max-new-tokens)")


def train(cfg: GRPOConfig, extra_rewards: dict | None = None, reward_schedule=None, prompt_source=None,
          task=None) -> dict:
    """Run GRPO as configured; returns the eval results ({"base": ..., "final": ...}).
    The public entry point is `r1lab.grpo` (r1lab/api.py), which also takes data and reward callables.

    extra_rewards: reward functions beyond the built-in ones and cfg.reward_fn (e.g. reward models),
    by name, each fn(completions, examples) -> list[float | None] (sync or async).
    reward_schedule(step) -> weights: overrides the weights per step (R1 stage 4 adds preference
    rewards only in the last steps). prompt_source: anything with .batch(step, n, seed) to use
    instead of the task's training prompts. task: a tasks.Task to use instead of cfg.task/cfg.data.
    """
    run = setup(cfg, extra_rewards, prompt_source, task)
    try:
        return run_steps(run, reward_schedule)
    finally:  # also when a step raises (a first-batch reward error, the NaN stop, Ctrl-C)
        run.close()


def run_steps(run: Run, reward_schedule=None) -> dict:
    """The GRPO loop from run.start to cfg.steps, then the final save and evaluation."""
    cfg = run.cfg
    if run.start >= cfg.steps and (not cfg.eval_problems or "final" in run.results):
        print(f"{run.out}: this run is already complete ({cfg.steps} steps)")
        if "final" in run.results and "base" in run.results:
            print(eval_table(run.results))
        return run.results
    if cfg.eval_problems and "base" not in run.results and run.start == 0:
        _evaluate(run, "base")  # every process samples its share of the problems
    dist.barrier(run.world)

    model, tokenizer, device, amp, world = run.model, run.tokenizer, run.device, run.amp, run.world
    log = run.log = (MetricsLog(run.out, "grpo", total=cfg.steps, resume_step=run.start if run.start else None,
                                report_to=cfg.report_to, config=to_dict(cfg))
                     if world.main else None)
    G, P = cfg.group_size, cfg.prompts_per_step
    prompt_cache: dict = {}
    held = dist.gather(run.param_bytes[0], world)  # policy + reference bytes on each process (FSDP2: shards)
    bad_in_a_row = 0
    model.train()
    for step in range(run.start, cfg.steps):
        weights = reward_schedule(step) if reward_schedule else run.weights
        # 1-3. prompts (this process's whole groups) -> rollouts -> rewards
        mine, offset = dist.shard(run.prompts.batch(step, P, cfg.seed), world)
        actor = run.gen.model if run.gen is not None else model
        batch = rollout(actor, tokenizer, mine, cfg, step, 0, weights, run.reward_fns, prompt_cache, amp, offset,
                        run.sync)
        summary = summarize(batch, G)  # before DAPO's refill: zero_std counts the groups as sampled
        if cfg.dynamic_sampling:
            batch = _refill(batch, actor, tokenizer, run.prompts, cfg, step, weights, run.reward_fns, prompt_cache, amp)
        # 4. group-relative advantages
        advantages = group_advantages(batch.rewards, G, scale=cfg.loss_agg != "dr-grpo")
        # 5. mu updates of the clipped surrogate + KL, against pi_old (the rollout policy)
        t1 = time.perf_counter()
        # one forward per micro-batch when the model is checkpointed or sharded (both need each
        # layer to run once per backward); otherwise the shared prompt prefix is computed once
        seq = sequences(batch.prompt_ids, batch.completion_ids, tokenizer.pad_token_id, device,
                        share_prefix=not (cfg.activation_checkpointing or cfg.fsdp), by_length=not cfg.fsdp)
        mask = seq["mask"].clone()
        if cfg.overlong_filter:
            mask[torch.tensor(batch.truncated, device=device)] = 0.0
        ref_logp = reference_logprobs(run, seq)
        old_logp = (frozen_logprobs(model, seq, cfg.micro_batch, cfg.temperature, amp)
                    if cfg.updates_per_batch > 1 else None)
        stats = _update(model, run.optimizer, seq, mask, advantages.to(device), old_logp, ref_logp, cfg, amp, world)
        run.scheduler.step()
        if run.gen is not None:
            run.gen.refresh(model)
        t_train = time.perf_counter() - t1
        # 6. numerics guard, reference reset, logging, checkpoint
        bad_in_a_row = bad_in_a_row + 1 if stats["skipped_updates"] else 0
        if cfg.beta > 0 and cfg.ref_reset_every and (step + 1) % cfg.ref_reset_every == 0:
            reset_reference(run)
        summaries = dist.gather(summary, world)
        if log is not None:
            log.log(step, {**_step_metrics(summaries, stats, run.optimizer, t_train), "param_bytes": max(held),
                           "param_bytes_unsharded": run.param_bytes[1]})
        if bad_in_a_row >= cfg.max_nonfinite:
            raise UserError(f"the loss or the gradients were NaN/inf in {bad_in_a_row} steps in a row (last: step "
                            f"{step}); updates were skipped and the run stopped. Lower --lr, check the rewards, or "
                            f"resume from the last checkpoint in {run.out / 'checkpoints'}")
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step == cfg.steps - 1:
            save_checkpoint(run, step)
    save_final(run)
    if cfg.eval_problems:
        _evaluate(run, "final")
        if "base" in run.results and world.main:
            print(eval_table(run.results))
    dist.barrier(world)
    return run.results


def reference_logprobs(run: Run, seq: dict):
    """Log-probs of the reference (None without a KL term); with LoRA before the first reset, the
    reference is the policy with its adapter switched off."""
    cfg = run.cfg
    if cfg.beta <= 0:
        return None
    if run.ref is None:
        with run.model.disable_adapter():
            return frozen_logprobs(run.model, seq, cfg.micro_batch, cfg.temperature, run.amp)
    return frozen_logprobs(run.ref, seq, cfg.micro_batch, cfg.temperature, run.amp)


def reset_reference(run: Run) -> None:
    """pi_ref <- pi_theta (R1-Zero: every 400 steps)."""
    if parallel.is_lora(run.model):
        run.ref = parallel.merged_copy(run.model).eval().requires_grad_(False)
    else:
        run.ref.load_state_dict(run.model.state_dict())
    run.ref_is_start = False


def save_checkpoint(run: Run, step: int) -> None:
    """Rank 0 writes; the others wait, so no process runs ahead of a checkpoint being written.
    (With FSDP2 every process first takes part in gathering the full state.)"""
    sharded = run.cfg.fsdp
    weights = parallel.full_state_dict(run.model, sharded) if sharded else None
    optim = parallel.optimizer_state(run.model, run.optimizer, sharded)
    ref = None if (run.ref is None or run.ref_is_start) else parallel.full_state_dict(run.ref, sharded)
    if run.world.main:
        state = {"optimizer": optim, "scheduler": run.scheduler.state_dict(), "rng": ckpt.rng_state(), "ref": ref}
        ckpt.save(run.out, step, run.model, run.tokenizer, state, {"identity": run_identity(run.cfg)},
                  keep=run.cfg.keep_last, state_dict=weights)
    dist.barrier(run.world)


def save_final(run: Run) -> None:
    """OUT/model in Hugging Face format, loadable without r1lab or PEFT (LoRA merged; FSDP gathered);
    with LoRA also OUT/adapter."""
    weights = parallel.full_state_dict(run.model, True) if run.cfg.fsdp else None
    if not run.world.main:
        return
    with ckpt.atomic_folder(run.out / "model") as tmp:
        if parallel.is_lora(run.model):
            save_model(parallel.merged_copy(run.model), run.tokenizer, tmp)
        else:
            save_model(run.model, run.tokenizer, tmp, state_dict=weights)
    if parallel.is_lora(run.model):
        with ckpt.atomic_folder(run.out / "adapter") as tmp:
            save_model(run.model, run.tokenizer, tmp)


def _evaluate(run: Run, name: str) -> None:
    """Held-out evaluation through whatever generates the rollouts (the policy, or the vLLM engine
    holding the policy's current weights); called on every process, rank 0 writes."""
    actor = run.gen.model if run.gen is not None else run.model
    run.results[name] = evaluate(actor, run.tokenizer, run.task.eval_examples, run.eval_cfg, run.amp,
                                 run.language_fn, keep_samples=3, world=run.world, sync=run.sync)
    if run.world.main:
        ckpt.write_json(run.out / "eval.json", run.results)
        print(_eval_line(name, run.results[name]))


def _refill(batch, model, tokenizer, prompts, cfg, step, weights, reward_fns, cache, amp) -> Batch:
    """DAPO dynamic sampling: keep groups with reward spread; roll out more prompts until P such
    groups (or the round limit), then fill up with the flat groups so the batch size is constant."""
    G, P = cfg.group_size, cfg.prompts_per_step
    spread = lambda b: [g for g in range(len(b.rewards) // G) if float(b.rewards[g * G:(g + 1) * G].std()) > 1e-6]  # noqa: E731
    pool, good = batch, spread(batch)
    for round_ in range(1, cfg.max_refill_rounds + 1):
        if len(good) >= P:
            break
        extra = prompts.batch(step, P, cfg.seed + 7919 * round_)
        pool = concat([pool, rollout(model, tokenizer, extra, cfg, step, round_, weights, reward_fns, cache, amp)])
        good = spread(pool)
    flat = [g for g in range(len(pool.rewards) // G) if g not in set(good)]
    return select_groups(pool, (good + flat)[:P], G)


def _update(model, optimizer, seq, mask, advantages, old_logp, ref_logp, cfg: GRPOConfig, amp, world=World()) -> dict:
    """mu optimizer updates on one rollout batch (this process's share of it); returns statistics of
    the whole batch, over all processes."""
    B = seq["ids"].shape[0]
    # the normaliser of the chosen aggregation over the *global* batch, so that micro-batch and
    # per-process losses add up to the loss of the whole batch
    tokens = dist.all_sum([float(mask.sum())], world)[0]
    norm = {"seq-mean": float(B * world.size), "token-mean": max(tokens, 1.0),
            "dr-grpo": float(B * world.size * cfg.max_new_tokens)}[cfg.loss_agg]
    sums = {"loss": 0.0, "kl": 0.0, "clip": 0.0, "entropy": 0.0}
    grad_norms, skipped = [], 0
    for update in range(cfg.updates_per_batch):
        optimizer.zero_grad(set_to_none=True)
        loss64 = 0.0
        for rows in micro_batches(seq["completion_len"].tolist(), cfg.micro_batch, seq["by_length"]):
            logits = completion_logits(model, seq, rows, amp)
            lc = logits.shape[1]
            logp = token_logprobs(logits, cut(seq["targets"], rows, lc), cfg.temperature)
            old = cut(old_logp, rows, lc) if old_logp is not None else logp.detach()
            loss, st = grpo_loss(logp, old, advantages[rows.to(advantages.device)], cut(mask, rows, lc),
                                 cut(ref_logp, rows, lc) if ref_logp is not None else None, cfg.beta,
                                 cfg.eps_low, cfg.eps_high, cfg.loss_agg, norm=norm, max_len=cfg.max_new_tokens)
            # FSDP2 averages gradients over processes; the loss is scaled so that it sums them instead
            (loss * world.size if cfg.fsdp else loss).backward()
            loss64 += st["sum64"]
            if update == 0:
                sums["kl"] += st["kl"] * st["tokens"]
                sums["clip"] += st["clip_frac"] * st["tokens"]
                with torch.no_grad():
                    sums["entropy"] += float((token_entropy(logits.detach(), cfg.temperature) * cut(mask, rows, lc)).sum())
        if not cfg.fsdp:
            dist.sum_gradients(model, world)
        loss_all = dist.all_sum([loss64], world)[0] / norm
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip else float("inf"))
        if not (math.isfinite(loss_all) and math.isfinite(float(grad_norm))):
            optimizer.zero_grad(set_to_none=True)  # a NaN/inf update would poison the weights: skip it
            skipped += 1
            continue
        optimizer.step()
        sums["loss"] += loss_all / cfg.updates_per_batch
        grad_norms.append(float(grad_norm))
    kl, clip, ent = dist.all_sum([sums["kl"], sums["clip"], sums["entropy"]], world)
    n = max(tokens, 1.0)
    return {"loss": sums["loss"], "kl": kl / n, "clip_frac": clip / n, "entropy": ent / n,
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else float("nan"),
            "skipped_updates": skipped}


def summarize(batch: Batch, G: int) -> dict:
    """What the step's metrics need from one process's batch (small, to gather across processes)."""
    from ..rewards.parse import reflection

    return {"rewards": batch.rewards.tolist(), "parts": batch.parts, "lengths": [len(c) for c in batch.completion_ids],
            "checked": [reflection(t).checked for t in batch.texts],
            "truncated": batch.truncated, "errors": batch.reward_errors, "t_gen": batch.t_gen,
            "t_reward": batch.t_reward,
            "zero_std": [float(batch.rewards[g * G:(g + 1) * G].std()) < 1e-6 for g in range(len(batch.rewards) // G)]}


def _step_metrics(parts: list[dict], train_stats: dict, optimizer, t_train) -> dict:
    """One row of metrics.jsonl from the gathered summaries of every process."""
    cat = lambda key: [x for p in parts for x in p[key]]  # noqa: E731
    rewards, lengths, truncated, zero_std = cat("rewards"), cat("lengths"), cat("truncated"), cat("zero_std")
    checked = cat("checked")
    row = {"reward": sum(rewards) / len(rewards)}
    for name in parts[0]["parts"]:  # the mean over the samples the reward applies to (None: it does not)
        values = [x for p in parts for x in p["parts"][name] if x is not None]
        if values:
            row[f"reward_{name}"] = sum(values) / len(values)
    if "reward_accuracy" in row:
        row["accuracy"] = row["reward_accuracy"]
        # accuracy of the samples whose reasoning checks itself and of the others (absent: none of them)
        right = [x for p in parts for x in p["parts"]["accuracy"]]
        for name, want in (("accuracy_checked", True), ("accuracy_unchecked", False)):
            values = [r for r, c in zip(right, checked) if r is not None and c == want]
            if values:
                row[name] = sum(values) / len(values)
    if "reward_format" in row:
        row["format"] = row["reward_format"]
    row.update(train_stats)
    row.update({"len_mean": sum(lengths) / len(lengths), "len_max": float(max(lengths)),
                "truncated": sum(truncated) / len(truncated), "zero_std": sum(zero_std) / len(zero_std),
                "reflection_rate": sum(checked) / len(checked),
                "reward_errors": sum(p["errors"] for p in parts), "lr": optimizer.param_groups[0]["lr"],
                "t_gen": max(p["t_gen"] for p in parts), "t_reward": max(p["t_reward"] for p in parts),
                "t_train": t_train})
    return row


def _eval_line(name: str, m: dict) -> str:
    return (f"eval {name}: pass@1={m['pass@1']:.3f} cons@{m['k']}={m['cons@k']:.3f} "
            f"answer_accuracy={m['answer_accuracy']:.3f} format={m['format']:.3f} "
            f"mean_length={m['mean_length']:.1f} ({m['n_problems']} problems x {m['k']})")


def eval_table(results: dict) -> str:
    keys = ["pass@1", "cons@k", "answer_accuracy", "format", "mean_length"]
    names = [n for n in results if isinstance(results[n], dict) and "pass@1" in results[n]]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{results[n][k]:.3f}" for n in names) + " |")
    return "\n".join(lines)
