"""Running the independent tasks of a corpus build in a process pool, with a progress bar."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Sequence

from tqdm import tqdm


def run_tasks(function: Callable[..., Any], tasks: Sequence[tuple], num_jobs: int, desc: str,
              sizes: Sequence[int] | None = None, unit: str = "utt") -> list[Any]:
    """``[function(*task) for task in tasks]``, computed by ``num_jobs`` processes (1: in this one).

    Results come back in task order whatever finished first, so the output does not depend
    on ``num_jobs``; ``sizes`` (one per task, default 1) advance the progress bar. The first
    task to fail stops the run: pending tasks are cancelled and its exception is raised.
    """
    sizes = list(sizes) if sizes is not None else [1] * len(tasks)
    results: list[Any] = [None] * len(tasks)
    with tqdm(total=sum(sizes), desc=desc, unit=unit, dynamic_ncols=True) as bar:
        if num_jobs == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                results[i] = function(*task)
                bar.update(sizes[i])
            return results
        pool = ProcessPoolExecutor(max_workers=num_jobs)
        try:
            futures = {pool.submit(function, *task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                bar.update(sizes[i])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return results
