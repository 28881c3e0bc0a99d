"""An async reward: r1lab awaits every async reward of a batch together, so rewards that wait on a
service (a judge model behind HTTP, a remote sandbox) overlap instead of queueing.

    r1lab zero --reward-fn examples/async_reward.py:judged --rewards accuracy=1,format=0.5,judged=1
"""

import asyncio


async def judge(completion: str, example: dict) -> float:
    await asyncio.sleep(0.01)  # stands for a request to a judge service
    return 1.0 if str(example["answer"]) in completion else 0.0


async def judged(completions: list[str], examples: list[dict]) -> list[float]:
    return list(await asyncio.gather(*(judge(c, e) for c, e in zip(completions, examples))))
