"""Diversity report of a text column (mean pairwise cosine, near-duplicates), from the command line:

    python -m generators.offline.diversity --store factory-data --dataset instructions

The maths: generators/skillmix/diversity.py."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from generators.skillmix.diversity import diversity_report, embed


def main(argv: Sequence[str] | None = None) -> int:
    from factory.errors import FactoryError
    from factory.store import Store, check_dataset_name, quote_identifier

    parser = argparse.ArgumentParser(prog="python -m generators.offline.diversity",
                                     description="Mean pairwise cosine similarity and near-duplicates of a text column.")
    parser.add_argument("--store", default="factory-data", help="store folder or fsspec URL")
    parser.add_argument("--dataset", default="instructions")
    parser.add_argument("--column", default="instruction")
    parser.add_argument("--where", default="error IS NULL", help="SQL predicate selecting rows")
    parser.add_argument("--threshold", type=float, default=0.9, help="cosine at or above which rows are near-duplicates")
    parser.add_argument("--model", default="minilm-l6", help="sentence-transformers model (bundled name or folder)")
    args = parser.parse_args(argv)
    try:
        store = Store(args.store)
        check_dataset_name(args.dataset)
        if not store.has(args.dataset):
            raise FactoryError(f"no data set {args.dataset!r} in store {store.location}")
        where = f" WHERE {args.where}" if args.where else ""
        frame = store.sql(f"SELECT {quote_identifier(args.column)} AS text FROM {quote_identifier(args.dataset)}"
                          f"{where} ORDER BY id")
    except FactoryError as exc:
        print(f"diversity: error: {exc}", file=sys.stderr)
        return 2
    texts = [text for text in frame["text"].to_list() if text]
    report = diversity_report(embed(texts, args.model), args.threshold)
    print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
