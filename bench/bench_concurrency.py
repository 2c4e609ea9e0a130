"""Fair scheduling under load: concurrent Compare/Tutor requests while an evaluation runs.

    python bench/bench_concurrency.py                       # bundled model, 32 requests
    python bench/bench_concurrency.py --model tiny --num_requests 8     # dry run, seconds

The whole app (`app.build_demo`) is served on a free port. Each request is first run alone
(the handler called directly, nothing else running): its output is the reference and its time
the solo latency. Then an evaluation starts as a background job (`mathtutor.jobs`) and
`--num_requests` clients send their request at once through `gradio_client`, alternating
Compare (two panes, `--max_new_tokens`) and a Tutor worked solution (`--tutor_every`). Every
request has its own problem with its own answer (distinct GSM8K answers), and it is correct
when its final output equals its solo output, so an answer delivered to the wrong request, or
changed by the concurrent evaluation, is counted wrong. Printed: latency p50/p95/max under load
vs solo, correctness, the evaluation steps interleaved with interactive ones (`ModelLock`
counters), the evaluation's progress during the burst, and one decoding step's time per layer
(the figure `mathtutor.chunks.GPU_STEP_SECONDS_PER_LAYER` estimates for ZeroGPU).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def distinct_problems(count: int, seed: int) -> tuple[str, list]:
    """(dataset, problems): GSM8K test problems whose answers all differ, else generated ones."""
    import random

    from mathtutor import data, generators

    try:
        dataset, pool = "gsm8k", data.load_problems("gsm8k", split="test")
    except (ValueError, FileNotFoundError, RuntimeError):
        rng = random.Random(seed)
        dataset = "arithmetic"
        pool = [generators.random_problem(dataset, "easy", rng) for _ in range(20 * count)]
    random.Random(seed).shuffle(pool)
    chosen, answers = [], set()
    for problem in pool:
        if problem.answer not in answers:
            chosen.append(problem)
            answers.add(problem.answer)
        if len(chosen) == count:
            return dataset, chosen
    raise ValueError(f"only {len(chosen)} problems with distinct answers")


def shown(output) -> tuple:
    """What the user reads in a final output: chat texts and markdown, notices left out.

    The handler gives a chat message's content as a string, Gradio's client as text parts.
    """
    output = output if isinstance(output, (list, tuple)) else [output]
    texts = []
    for value in output[:-1] if len(output) > 1 else output:  # the last output is a notice
        if isinstance(value, list):  # a chatbot: the assistant's message
            content = value[-1]["content"]
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content)
            value = content
        texts.append(value.strip() if isinstance(value, str) else value)  # Gradio strips too
    return tuple(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled", help="'bundled', 'tiny' or a directory")
    parser.add_argument("--num_requests", type=int, default=32)
    parser.add_argument("--tutor_every", type=int, default=2, help="every Nth is Tutor; 0 none")
    parser.add_argument("--max_new_tokens", type=int, default=64, help="Compare's token limit")
    parser.add_argument("--eval_problems", type=int, default=200)
    parser.add_argument("--eval_max_new_tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    real_home = Path(os.environ.get("MATHTUTOR_HOME") or Path.home() / ".cache" / "mathtutor")
    home = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    (real_home / "models").mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(real_home / "models", target_is_directory=True)
    os.environ["MATHTUTOR_HOME"] = str(home)  # the bench's runs stay out of the real database
    os.environ["MATHTUTOR_TUTOR_RATE"] = str(10 * args.num_requests)  # measure, not refuse
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    spec = args.model
    if spec == "tiny":
        from mathtutor.models import make_tiny_model

        spec = str(make_tiny_model(home / "tiny-model"))
    os.environ["MATHTUTOR_MODEL"] = spec

    from gradio_client import Client

    import app
    from mathtutor import jobs
    from mathtutor.evaluate import EvalConfig
    from mathtutor.models import BACKGROUND, INTERACTIVE
    from mathtutor.ui import compare as compare_tab
    from mathtutor.ui import tutor as tutor_tab
    from mathtutor.ui.common import loaded_model

    loaded = loaded_model(spec)
    layers = loaded.model.config.num_hidden_layers
    dataset, problems = distinct_problems(args.num_requests, args.seed)
    requests = []
    for index, problem in enumerate(problems):
        if args.tutor_every and index % args.tutor_every == args.tutor_every - 1:
            requests.append(("tutor", "/show_solution", [spec, "base", problem.question, True]))
        else:
            inputs = [spec, "base", "base", problem.question, problem.answer, "chat"]
            inputs += [args.max_new_tokens, 0, 1, 0, False]
            requests.append(("compare", "/run_compare", inputs))

    def final(generator) -> tuple:
        *_, last = generator
        return shown(last)

    print(f"model {loaded.base_model} on {loaded.device}, {layers} layers", flush=True)
    solo, solo_seconds, steps_before = [], [], loaded.lock.acquisitions[INTERACTIVE]
    for kind, _, inputs in requests:
        handler = compare_tab.run_compare if kind == "compare" else tutor_tab.show_solution
        began = time.perf_counter()
        solo.append(final(handler(*inputs)))
        solo_seconds.append(time.perf_counter() - began)
    step_seconds = sum(solo_seconds) / (loaded.lock.acquisitions[INTERACTIVE] - steps_before)
    print(f"solo: {len(requests)} requests in {sum(solo_seconds):.1f} s", flush=True)

    demo = app.build_demo()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.queue(default_concurrency_limit=4).launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True
    )
    job = jobs.start_evaluation(
        EvalConfig(
            model=spec,
            dataset=dataset,
            num_samples=args.eval_problems,
            max_new_tokens=args.eval_max_new_tokens,
            seed=args.seed + 1,
        )
    )
    while job.running and loaded.lock.acquisitions[BACKGROUND] == 0:
        time.sleep(0.05)
    assert job.running, f"the evaluation ended before the requests: {job.status} {job.error}"
    counts = dict(loaded.lock.acquisitions)
    done_before, burst_began = job.done, time.perf_counter()

    def send(request: tuple) -> tuple[float, tuple]:
        _, api_name, inputs = request
        # A long HTTP timeout: on a loaded CPU the server may take a while to accept a request.
        client = Client(demo.local_url, verbose=False, httpx_kwargs={"timeout": 600})
        began = time.perf_counter()
        output = client.predict(*inputs, api_name=api_name)
        seconds = time.perf_counter() - began
        client.close()
        return seconds, shown(output)

    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(send, requests))
    burst = time.perf_counter() - burst_began
    interactive = loaded.lock.acquisitions[INTERACTIVE] - counts[INTERACTIVE]
    background = loaded.lock.acquisitions[BACKGROUND] - counts[BACKGROUND]
    still_running, done_after = job.running, job.done
    jobs.stop_job()
    job.wait()
    demo.close()

    latencies = [seconds for seconds, _ in results]
    correct = sum(output == reference for (_, output), reference in zip(results, solo, strict=True))
    for (kind, _, _), (_, output), reference in zip(requests, results, solo, strict=True):
        if output != reference:
            print(f"MISMATCH {kind}:\n  alone: {reference}\n  under load: {output}")
    kinds = {kind: sum(k == kind for k, _, _ in requests) for kind in ("compare", "tutor")}
    print()
    print(
        f"{len(requests)} concurrent requests ({kinds['compare']} Compare, {kinds['tutor']} "
        f"Tutor) during an evaluation of {args.eval_problems} problems, model {args.model}:"
    )
    print(
        f"  latency p50 {percentile(latencies, 0.5):.1f} s, p95 {percentile(latencies, 0.95):.1f}"
        f" s, max {max(latencies):.1f} s (solo: mean {statistics.mean(solo_seconds):.1f} s, "
        f"sum {sum(solo_seconds):.1f} s; burst took {burst:.1f} s)"
    )
    print(f"  correct (output equals the request's own solo output): {correct}/{len(requests)}")
    print(
        f"  model steps during the burst: {interactive} interactive, {background} evaluation; "
        f"evaluation records {done_before} -> {done_after} of {job.total}, "
        f"{'still running' if still_running else 'ended'} at the end of the burst"
    )
    print(
        f"  one interactive decoding step: {1000 * step_seconds:.1f} ms "
        f"({1000 * step_seconds / layers:.2f} ms per layer) on {loaded.device}"
    )


if __name__ == "__main__":
    main()
