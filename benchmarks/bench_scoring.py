"""Teacher-forced scoring (DESIGN.md §7): 8 responses x 16 prompts scored with the prompt shared
(one forward pass per prompt, its cache copied per response) vs each pair scored one by one, and
scoring vs generating the same responses. Prints timings and ratios (targets: sharing >= 2x
faster; scoring <= 1/5 the cost of generating).

    .venv/bin/python -m benchmarks.bench_scoring --prompts 16 --samples 8 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from factory.engines import ModelSpec, SamplingParams, load_engine

PROMPTS = Path(__file__).resolve().parents[1] / "examples" / "prompts.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    engine = load_engine(ModelSpec(name=args.model, max_batch_size=args.samples))
    prompts = [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines()][: args.prompts]
    conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]

    start = time.perf_counter()
    generations = engine.generate(conversations, SamplingParams(n=args.samples, max_new_tokens=args.max_new_tokens,
                                                                temperature=0.7, seed=0))
    generating = time.perf_counter() - start
    pairs = [(conversation, completion.text)
             for conversation, generation in zip(conversations, generations, strict=True)
             for completion in generation.completions]

    start = time.perf_counter()
    shared = engine.logprobs([c for c, _ in pairs], [r for _, r in pairs])
    sharing = time.perf_counter() - start
    start = time.perf_counter()
    alone = [engine.logprobs([conversation], [response])[0] for conversation, response in pairs]
    one_by_one = time.perf_counter() - start
    worst = max(abs(a - b) for s, o in zip(shared, alone, strict=True) for a, b in zip(s, o, strict=True))

    print(f"scoring: {len(pairs)} responses ({args.prompts} prompts x {args.samples}), "
          f"up to {args.max_new_tokens} tokens each, model {args.model}")
    print(f"  generate the responses     : {generating:7.2f} s")
    print(f"  score, prompt shared       : {sharing:7.2f} s")
    print(f"  score, one pair at a time  : {one_by_one:7.2f} s")
    print(f"  sharing speed-up           : {one_by_one / sharing:5.2f}x (target >= 2)")
    print(f"  scoring / generating cost  : {sharing / generating:5.3f} (target <= 0.2)")
    print(f"  largest log-prob difference between the two scorings: {worst:.2e}")


if __name__ == "__main__":
    main()
