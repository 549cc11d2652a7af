"""Surge benchmark (issue 7): N citizens report within one minute under Telegram's flood control.

Run from the repo root::

    .venv/bin/python bench/surge.py [--citizens 60] [--spread 60] [--think 1.0]
                                    [--governor both|on|off] [--db sqlite|postgres]

The real ``build_application`` polls the in-process Bot API double over loopback with the
double's flood control switched on as Telegram applies it (20 messages a minute into one group,
30 a second overall, a short burst then about one a second into one private chat). N simulated
citizens start their GPS reports at random moments within ``--spread`` seconds and tap at a
human pace (``--think`` seconds, 0.5-1.5 x, before each action), each waiting for the bot's
answer as a person would. The operators' chat is a forum: every ticket gets a topic, its card
and a line on the queue board.

Reported, for the governor on and (for comparison) off:
  - p50/p95/max of each step's reply latency (update handed to the double -> the bot's first
    accepted call into that chat), overall and per step;
  - replies dropped: updates that never got an answer, and citizens whose report never got
    its reference;
  - the time until the last operator card was visible, and confirm -> card / confirm -> queue
    board p50/p95/max per ticket (issue 8's target: on the board within 10 s);
  - 429s drawn as a share of all counted calls (target < 1 %).

Nothing leaves loopback; the geocoder is offline. Numbers go to stdout (and the README).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the intake benchmark's helpers

import intake as bench  # bench/intake.py

from bot.app import build_application, start_application, stop_application
from bot.config import load_settings
from bot.double.fake_bot_api import FakeBotApi
from bot.double.flood import PRIVATE_WINDOW
from handlers.context import SERVICES_KEY

OPERATOR_CHAT = bench.OPERATOR_CHAT
OPERATOR_ID = 777000111
REF = bench.REF
perf_counter = time.perf_counter
STEPS = ("/start", "report", "group", "GPS", "location ok", "contact", "name", "done", "submit")


class SurgeObserver(bench.Observer):
    """Like the intake benchmark's observer, but only calls the double ACCEPTED count (a call
    refused with 429 changed nothing a person or an operator can see), and the operators'
    chat is read as a forum: a card is the first message with the reference inside a topic,
    the queue board is a message in the General topic (no thread id)."""

    def __init__(self, fake: FakeBotApi, operator_chat: int) -> None:
        super().__init__(fake, operator_chat)
        self.count_refused = False  # a 429 changed nothing a person can see
        self.board_at: dict[str, float] = {}

    def _seen(self, method: str, params: dict[str, Any], stamp: float) -> None:
        self.calls += 1
        try:
            chat_id = int(params.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        self.chat_calls.setdefault(chat_id, []).append(stamp)
        lowered = method.lower()
        text = str(params.get("text") or "")
        if chat_id == self.operator_chat and lowered in ("sendmessage", "editmessagetext"):
            stamps = self.card_at if params.get("message_thread_id") else self.board_at
            for found in REF.finditer(text):
                stamps.setdefault(found.group(0), stamp)
        elif lowered == "sendmessage":
            found = REF.search(text)
            if found is not None:
                self.ack_at.setdefault(found.group(0), stamp)
        waiter = self._waiters.pop(chat_id, None)
        if waiter is not None:
            waiter.set()


@dataclass
class Outcome:
    """One run's figures."""

    governor: bool
    citizens: int
    finished: int
    updates: int
    answered: int
    per_step: dict[str, list[float]] = field(default_factory=dict)
    response: list[float] = field(default_factory=list)
    card: list[float] = field(default_factory=list)
    board: list[float] = field(default_factory=list)
    last_card_after_first_update: float = 0.0
    counted_calls: int = 0
    refused: int = 0
    wall: float = 0.0
    errors: list[str] = field(default_factory=list)


async def run(args: argparse.Namespace, governor: bool) -> Outcome:
    """One surge through a fresh double and database."""
    async with bench.database(args.db, args.postgres_url) as url, FakeBotApi() as fake:
        fake.register_forum(OPERATOR_CHAT, "Operator 112")
        settings = load_settings(
            {
                "TELEGRAM_BOT_TOKEN": fake.token,
                "TELEGRAM_API_BASE_URL": fake.base_url,
                "TELEGRAM_API_FILE_URL": fake.base_file_url,
                "DATABASE_URL": url,
                "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
                "OPERATOR_USER_IDS": str(OPERATOR_ID),
                "GEOCODER": "offline",
                "TELEGRAM_RATE_GOVERNOR": "on" if governor else "off",
            },
            env_file=None,
        )
        application = build_application(settings)
        obs = SurgeObserver(fake, OPERATOR_CHAT)

        async def record(update: object, context: Any) -> None:
            obs.fail(f"handler error: {context.error!r}")

        application.add_error_handler(record)
        await start_application(application, poll_timeout=bench.POLL_TIMEOUT)
        # Telegram's limits from the first citizen on (warm-up and start-up are not measured).
        fake.flood_control(group_per_minute=20, overall_per_second=30, private=PRIVATE_WINDOW)
        rng = random.Random(args.seed)
        people = bench.new_users(fake, args.citizens, "Warga")
        offsets = sorted(rng.uniform(0, args.spread) for _ in people)
        bench.WAIT_TIMEOUT = args.timeout
        first = perf_counter()

        async def citizen(user: Any, offset: float) -> bench.Citizen:
            await asyncio.sleep(offset)
            return await bench.full_intake(user, obs, args.think)

        try:
            results = await asyncio.gather(
                *(citizen(user, at) for user, at in zip(people, offsets, strict=True)),
                return_exceptions=True,
            )
            done = [r for r in results if isinstance(r, bench.Citizen)]
            errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
            refs = [c.ref for c in done]
            with contextlib.suppress(TimeoutError, bench.RunFailed):
                await obs.wait_cards(refs)
            services = application.bot_data[SERVICES_KEY]
            with contextlib.suppress(bench.RunFailed):
                await bench.outbox_drained(services)
            wall = perf_counter() - first
        finally:
            await stop_application(application)
        stats = fake.flood_stats
        outcome = Outcome(
            governor=governor,
            citizens=args.citizens,
            finished=len(done),
            updates=sum(c.updates for c in done) + sum(1 for _ in errors),
            answered=0,
            errors=errors,
            wall=wall,
            counted_calls=stats.total_calls if stats else 0,
            refused=stats.total_refused if stats else 0,
        )
        for c in done:
            times = obs.response_times(c.user_id, c.sent)
            outcome.answered += len(times)
            outcome.response.extend(times)
            for step, latency in zip(STEPS, times, strict=False):
                outcome.per_step.setdefault(step, []).append(latency)
            if c.ref in obs.card_at:
                outcome.card.append(obs.card_at[c.ref] - c.confirm_at)
            if c.ref in obs.board_at:
                outcome.board.append(obs.board_at[c.ref] - c.confirm_at)
        if obs.card_at:
            outcome.last_card_after_first_update = max(obs.card_at.values()) - first
        return outcome


def pct(samples: list[float], q: float) -> str:
    return f"{bench.percentile(samples, q):.2f}" if samples else "-"


def report(outcome: Outcome) -> None:
    name = "governor ON " if outcome.governor else "governor OFF"
    share = outcome.refused / outcome.counted_calls if outcome.counted_calls else 0.0
    missing_cards = outcome.finished - len(outcome.card)
    print(f"\n== {name}: {outcome.citizens} citizens, run took {outcome.wall:.0f} s")
    print(f"  reports finished (reference received) {outcome.finished}/{outcome.citizens}")
    dropped = outcome.updates - outcome.answered
    print(f"  replies dropped (updates never answered) {dropped}; failed citizens "
          f"{len(outcome.errors)}")  # fmt: skip
    for error in outcome.errors[:3]:
        print(f"    {error[:150]}")
    print(f"  reply latency s: p50 {pct(outcome.response, 50)}  p95 {pct(outcome.response, 95)}"
          f"  max {pct(outcome.response, 100)}")  # fmt: skip
    for step in STEPS:
        samples = outcome.per_step.get(step, [])
        print(f"    {step:<12} p95 {pct(samples, 95):>6}  max {pct(samples, 100):>6}")
    print(f"  confirm -> queue board s: p50 {pct(outcome.board, 50)}  p95 {pct(outcome.board, 95)}"
          f"  max {pct(outcome.board, 100)}  (target <= 10 s; on the board: "
          f"{len(outcome.board)}/{outcome.finished})")  # fmt: skip
    print(f"  confirm -> card in its topic s: p50 {pct(outcome.card, 50)}  "
          f"p95 {pct(outcome.card, 95)}  max {pct(outcome.card, 100)}  "
          f"(cards missing: {missing_cards})")  # fmt: skip
    print(
        f"  last card visible {outcome.last_card_after_first_update:.0f} s after the first update"
    )
    print(
        f"  429s: {outcome.refused} of {outcome.counted_calls} counted calls = {share:.2%} "
        "(target < 1 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=60)
    parser.add_argument(
        "--spread", type=float, default=60.0, help="seconds over which reports start"
    )
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds before each action")
    parser.add_argument("--governor", choices=("both", "on", "off"), default="both")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=bench.DEFAULT_POSTGRES)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a person waits")
    parser.add_argument("--seed", type=int, default=112)
    args = parser.parse_args()
    print(bench.machine())
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.governor]
    outcomes = [asyncio.run(run(args, governor)) for governor in modes]
    for outcome in outcomes:
        report(outcome)
    if len(outcomes) == 2 and outcomes[0].response and outcomes[1].response:
        on, off = outcomes
        print(
            f"\nreply p95 on/off: {statistics.quantiles(on.response, n=20)[-1]:.2f} s / "
            f"{statistics.quantiles(off.response, n=20)[-1]:.2f} s"
        )


if __name__ == "__main__":
    main()
