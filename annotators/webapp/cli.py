"""`factory annotate serve|export|tokens --campaign CAMPAIGN.yaml` (wired into factory/cli.py, imported on use)."""

from __future__ import annotations

import argparse
from pathlib import Path

from filelock import FileLock, Timeout

from annotators.webapp.campaign import Campaign, load_campaign
from factory.errors import FactoryError
from factory.store import Store


def serve(campaign: Campaign, store: Store, host: str, port: int) -> None:
    """Run the app until interrupted. One server per campaign and store: the app keeps its answers
    in memory and is their only writer, so a second server is refused instead of racing it."""
    import uvicorn

    from annotators.webapp.app import create_app

    store.ensure_writable()
    guard = None
    if store.is_local:
        folder = Path(store.root) / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        guard = FileLock(str(folder / f"annotate-{campaign.name}.lock"), timeout=0)
        try:
            guard.acquire()
        except Timeout:
            raise FactoryError(f"campaign {campaign.name} is already served from store {store.location} "
                               "(another `factory annotate serve` holds it)") from None
    try:
        app = create_app(campaign, store)
        state = app.state.rating
        counts = ", ".join(f"{rater} {len(own)}" for rater, own in state.assignments.items())
        print(f"campaign {campaign.name}: {len(state.items)} items, task {campaign.task}; assigned: {counts}")
        print(f"serving on http://{host}:{port}/ (store {store.location}); Ctrl+C stops")
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if guard is not None:
            guard.release()


def print_tokens(campaign: Campaign) -> None:
    """A fresh strong random token (256 bits, URL-safe) per rater and for the owner, one per line as
    `account<TAB>token`; an account that reads `token_env` is shown as `export NAME=token` too.
    Nothing is written: the owner puts them where the campaign reads them and hands each rater theirs."""
    from annotators.webapp.security import new_token

    print(f"# fresh tokens for campaign {campaign.name}: give each rater only their own; "
          "put them in the YAML's `token` or in the variables its `token_env` names")
    for account_id, account in [*((r.id, r) for r in campaign.raters), ("owner", campaign.owner)]:
        token = new_token()
        print(f"{account_id}\t{token}" + (f"\t# export {account.token_env}={token}" if account.token_env else ""))


def annotate_command(args: argparse.Namespace, store: Store) -> int:
    campaign = load_campaign(args.campaign)
    if args.action == "tokens":
        print_tokens(campaign)
        return 0
    if args.action == "serve":
        serve(campaign, store, args.host, args.port)
        return 0
    from annotators.webapp.export import export_campaign

    if not args.out:
        raise FactoryError("annotate export needs --out FOLDER")
    result = export_campaign(campaign, store, args.out, args.format, overwrite=args.overwrite)
    print(f"exported {result.rows} rows of campaign {campaign.name} ({args.format}) to {result.path}"
          f" ({result.dropped} left out for high disagreement)")
    return 0
