"""The citizen intake conversation, declared as one table of named states.

The state lives in the database (the draft's ``step``), not in memory, so a restart — even
``kill -9`` — resumes every citizen exactly where they were. ``/cancel`` works from every
state; idle drafts are closed by a timer (see ``handlers.jobs``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum
from typing import cast

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.ext import JobQueue

from bot.domain.model import Category, CategoryGroup, IntakeStep, MediaKind
from bot.services.intake import Actor, IntakeService, Notice, Outcome
from bot.services.quick_report import Incoming, QuickReportService, SharedPoint
from handlers.context import Context, actor_of, private_press
from handlers.render import react, redraw, send, show
from handlers.views import Screen, Text, Views

log = logging.getLogger(__name__)

SCREEN_KEY = "screen"
"""chat_data: the id of the message showing the report and its «Send» (drawn again, in
place, after details arrive; in memory: after a restart only the reaction acknowledges)."""
REDRAW_AFTER = 1.0
"""Seconds after the last detail before the screen is drawn again: an album's photos arrive
together, and the screen is redrawn once after them."""
SCREEN_STEPS = (IntakeStep.DETAILS, IntakeStep.CONFIRM)
STEP_KEY = "step"
"""chat_data: the step of the chat's draft after its last update (in memory). A message goes
straight to that step's action, which checks the step in its own unit of work: one unit of
work per message. Only when the draft has moved on (its idle timer closed it) or the step is
not known (a restart forgot it) is the draft's step read first; an action that does I/O before
its unit (a geocoder's lookup) then did it for nothing."""
ALBUMS_KEY = "albums"
ALBUMS_KEPT = 20
"""Albums of a chat remembered (in memory) so each is acknowledged once."""


class Input(StrEnum):
    """What kind of message the citizen sent."""

    TEXT = "text"
    LOCATION = "location"
    CONTACT = "contact"
    MEDIA = "media"
    OTHER = "other"


MessageAction = Callable[[IntakeService, Actor, Message], Awaitable[Outcome]]
ButtonAction = Callable[[IntakeService, Actor, int, str], Awaitable[Outcome]]
QuickAction = Callable[[QuickReportService, Actor, int], Awaitable[Outcome]]
#: What a report can be started from, or kept on a draft at any step (never thrown away).
KEPT_KINDS = (Input.TEXT, Input.LOCATION, Input.MEDIA)


def _media(message: Message) -> tuple[MediaKind, str] | None:
    if message.photo:
        return MediaKind.PHOTO, message.photo[-1].file_id
    for kind, attachment in (
        (MediaKind.VOICE, message.voice),
        (MediaKind.VIDEO, message.video),
        (MediaKind.AUDIO, message.audio),
        (MediaKind.VIDEO, message.video_note),
        (MediaKind.DOCUMENT, message.document),
    ):
        if attachment is not None:
            return kind, attachment.file_id
    return None


def classify(message: Message) -> Input:
    """Return the kind of input a message carries."""
    if message.location is not None:
        return Input.LOCATION
    if message.contact is not None:
        return Input.CONTACT
    if _media(message) is not None:
        return Input.MEDIA
    if message.text:
        return Input.TEXT
    return Input.OTHER  # stickers, polls, dice, venues, games…


async def _location(intake: IntakeService, actor: Actor, message: Message) -> Outcome:
    loc = message.location
    assert loc is not None  # noqa: S101 - guaranteed by classify()
    live = loc.live_period
    seconds = int(live.total_seconds()) if isinstance(live, timedelta) else live
    return await intake.share_location(
        actor, loc.latitude, loc.longitude, loc.horizontal_accuracy, seconds
    )


async def _contact(intake: IntakeService, actor: Actor, message: Message) -> Outcome:
    contact = message.contact
    assert contact is not None  # noqa: S101 - guaranteed by classify()
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    return await intake.share_contact(actor, contact.phone_number, contact.user_id, name)


async def _media_detail(intake: IntakeService, actor: Actor, message: Message) -> Outcome:
    media = _media(message)
    assert media is not None  # noqa: S101 - guaranteed by classify()
    return await intake.add_media(actor, media[0], media[1], message.caption)


def text_action(
    method: Callable[[IntakeService, Actor, str], Awaitable[Outcome]],
) -> MessageAction:
    """Adapt a service method taking text to a message action."""

    async def action(intake: IntakeService, actor: Actor, message: Message) -> Outcome:
        return await method(intake, actor, message.text or "")

    return action


_ADDRESS = text_action(IntakeService.type_address)


async def _phone_text(intake: IntakeService, actor: Actor, message: Message) -> Outcome:
    """A typed number, or the keyboard's «Skip» key (which arrives as its label)."""
    text = message.text or ""
    if text.strip() in Views.skip_labels():
        return await intake.skip_phone(actor)
    return await intake.type_phone(actor, text)


#: The conversation: for each named state, which kinds of message it takes.
STATES: dict[IntakeStep, dict[Input, MessageAction]] = {
    IntakeStep.CATEGORY: {},  # buttons only
    IntakeStep.SUBCATEGORY: {},  # buttons only
    IntakeStep.GUESS: {},  # buttons only
    IntakeStep.LOCATION: {Input.LOCATION: _location, Input.TEXT: _ADDRESS},
    IntakeStep.INCIDENT_LOCATION: {Input.LOCATION: _location, Input.TEXT: _ADDRESS},
    IntakeStep.LOCATION_CONFIRM: {Input.LOCATION: _location, Input.TEXT: _ADDRESS},
    IntakeStep.LOCATION_SUGGEST: {Input.LOCATION: _location, Input.TEXT: _ADDRESS},
    IntakeStep.PHONE: {Input.CONTACT: _contact, Input.TEXT: _phone_text},
    IntakeStep.NAME: {Input.TEXT: text_action(IntakeService.type_name)},
    IntakeStep.DETAILS: {
        Input.TEXT: text_action(IntakeService.add_detail_text),
        Input.MEDIA: _media_detail,
    },
    IntakeStep.CONFIRM: {  # a detail sent at the summary is added as well
        Input.TEXT: text_action(IntakeService.add_detail_text),
        Input.MEDIA: _media_detail,
    },
}

#: The buttons of the conversation: ``i|<ticket id>|<action>[|<argument>]``.
BUTTONS: dict[str, ButtonAction] = {
    "grp": lambda s, a, t, arg: s.choose_group(a, t, CategoryGroup(arg)),
    "cat": lambda s, a, t, arg: s.choose_category(a, t, Category(arg)),
    "back": lambda s, a, t, _: s.back_to_groups(a, t),
    "locok": lambda s, a, t, _: s.confirm_location(a, t),
    "elsewhere": lambda s, a, t, _: s.location_elsewhere(a, t),
    "locretry": lambda s, a, t, _: s.retry_location(a, t),
    "note": lambda s, a, t, _: s.use_typed_description(a, t),
    "me": lambda s, a, t, _: s.confirm_identity(a, t),
    "notme": lambda s, a, t, _: s.change_identity(a, t),
    "name": lambda s, a, t, _: s.use_suggested_name(a, t),
    "silent": lambda s, a, t, _: s.toggle_silent(a, t),
    "persons": lambda s, a, t, arg: s.set_persons(a, t, arg),
    "done": lambda s, a, t, _: s.details_done(a, t),
    "edit": lambda s, a, t, arg: s.edit(a, t, arg),
    "submit": lambda s, a, t, _: s.submit(a, t),
    "cancel": lambda s, a, t, _: s.cancel(a, t),
}
#: The buttons of a one-message report's guess.
QUICK_BUTTONS: dict[str, QuickAction] = {
    "guessok": QuickReportService.confirm_guess,
    "guesscat": QuickReportService.change_guess,
    "guessplace": QuickReportService.change_guessed_place,
}


def incoming(message: Message) -> Incoming:
    """What a message carries, as plain data for the one-message report."""
    point = None
    if message.location is not None:
        loc = message.location
        live = loc.live_period
        seconds = int(live.total_seconds()) if isinstance(live, timedelta) else live
        point = SharedPoint(loc.latitude, loc.longitude, loc.horizontal_accuracy, seconds)
    return Incoming(text=message.text or message.caption, point=point, media=_media(message))


async def on_private_message(update: Update, context: Context) -> None:
    """Routes a citizen's message to the step of their draft, or to their open ticket."""
    message = update.effective_message
    if message is None:
        return
    actor = actor_of(update)
    intake = context.services.intake
    kind = classify(message)
    outcome = await _at_known_step(context, intake, actor, message, kind)
    if outcome is None:
        state = await intake.peek(actor)
        if state.step is None:  # after submit the chat belongs to the ticket (or its close rule)
            remember_step(context, state)
            await relay(update, context, actor, kind)
            return
        action = STATES[state.step].get(kind)
        if action is not None:
            outcome = await action(intake, actor, message)
        elif kind in KEPT_KINDS:  # not this step's answer, but never thrown away
            outcome = await context.services.quick.take(actor, incoming(message))
        else:
            state.notices.append(Notice.WRONG_INPUT)
            outcome = state
    remember_step(context, outcome)
    screen = context.views.intake(outcome)
    if message.media_group_id and not _first_in_album(context, message.media_group_id, screen):
        return  # an album is acknowledged once, not once per photo
    if screen.react:
        await react(context.bot, message, Screen([context.views.detail_added(outcome.citizen)]))
        redraw_later(context, actor)
        return
    remember_screen(context, outcome, screen, await send(context.bot, actor.chat_id, screen))


async def _at_known_step(
    context: Context, intake: IntakeService, actor: Actor, message: Message, kind: Input
) -> Outcome | None:
    """The message taken by the action of the step the chat's draft was last seen at; None
    when no step is known, that step takes no such message, or the draft has moved on (the
    action refused it and changed nothing)."""
    step = (context.chat_data or {}).get(STEP_KEY)
    action = STATES[step].get(kind) if isinstance(step, IntakeStep) else None
    if action is None:
        return None
    outcome = await action(intake, actor, message)
    if Notice.OTHER_STEP in outcome.notices or Notice.NO_REPORT in outcome.notices:
        return None
    return outcome


def remember_step(context: Context, outcome: Outcome) -> None:
    """Notes the step of the citizen's draft (or that there is none) for the next message."""
    if context.chat_data is None:
        return
    ticket = outcome.ticket
    if ticket is not None and ticket.is_draft and ticket.step is not None:
        context.chat_data[STEP_KEY] = ticket.step
    else:
        context.chat_data.pop(STEP_KEY, None)


def remember_screen(context: Context, outcome: Outcome, screen: Screen, shown: list[int]) -> None:
    """Notes which message shows the report's details screen (or summary), to redraw it
    (and the draft's step, for the next message); ``shown``: the screen's message ids."""
    remember_step(context, outcome)
    ticket = outcome.ticket
    if (
        screen.prompted
        and shown
        and context.chat_data is not None
        and ticket is not None
        and ticket.is_draft
        and ticket.step in SCREEN_STEPS
    ):
        context.chat_data[SCREEN_KEY] = shown[-1]


def redraw_later(context: Context, actor: Actor) -> None:
    """Redraws the details screen once the citizen's details stop arriving."""
    jobs = cast("JobQueue[Context] | None", context.job_queue)  # PTB leaves its type open
    if jobs is None or not (context.chat_data or {}).get(SCREEN_KEY):
        return
    name = f"redraw:{actor.chat_id}"
    for job in jobs.get_jobs_by_name(name):
        job.schedule_removal()
    jobs.run_once(_redraw, REDRAW_AFTER, data=actor, chat_id=actor.chat_id, name=name)


async def _redraw(context: Context) -> None:
    """Draws the details screen again with what the citizen added (best effort)."""
    job = context.job
    message_id = (context.chat_data or {}).get(SCREEN_KEY)
    if job is None or not isinstance(job.data, Actor) or not isinstance(message_id, int):
        return
    actor = job.data
    try:
        outcome = await context.services.intake.current(actor)  # never makes a record
        ticket = outcome.ticket if outcome is not None else None
        if (
            outcome is None
            or ticket is None
            or not ticket.is_draft
            or ticket.step not in SCREEN_STEPS
        ):
            return
        first = context.views.intake(outcome).replies[:1]
        if first and isinstance(first[0], Text):
            await redraw(context.bot, actor.chat_id, message_id, first[0])
    except Exception as exc:  # the reaction already acknowledged the detail
        log.info("could not redraw the details screen: %s", type(exc).__name__)


def _first_in_album(context: Context, album: str, screen: Screen) -> bool:
    """Whether this answer is new for the album (each kind of answer is shown once)."""
    chat_data = context.chat_data if context.chat_data is not None else {}
    albums: OrderedDict[str, set[str]] = chat_data.setdefault(ALBUMS_KEY, OrderedDict())
    key = (
        "react"
        if screen.react
        else "|".join(f"{type(r).__name__}:{getattr(r, 'text', '')[:40]}" for r in screen.replies)
    )
    shown = albums.setdefault(album, set())
    albums.move_to_end(album)
    while len(albums) > ALBUMS_KEPT:
        albums.popitem(last=False)
    if key in shown:
        return False
    shown.add(key)
    return True


async def relay(update: Update, context: Context, actor: Actor, kind: Input) -> None:
    """Hands a message of a citizen without a draft to the operators of their ticket."""
    message = update.effective_message
    assert message is not None  # noqa: S101 - checked by the caller
    media = _media(message)
    outcome = await context.services.relay.from_citizen(
        actor,
        kind=media[0].value if media else kind.value,
        message_id=message.message_id,
        text=message.text or message.caption,
        file_id=media[1] if media else None,
    )
    if Notice.NO_REPORT in outcome.notices:
        if kind in KEPT_KINDS:  # a one-message report: start a draft pre-filled from it
            started = await context.services.quick.take(actor, incoming(message))
            await send(context.bot, actor.chat_id, context.views.intake(started))
            return
        await send(context.bot, actor.chat_id, context.views.no_report(outcome.citizen))
        return
    context.services.outbox.wake()  # before the reply: operators first
    await send(context.bot, actor.chat_id, context.views.intake(outcome))


async def on_live_location(update: Update, context: Context) -> None:
    """Applies a live-location update (an edited location message)."""
    message = update.edited_message
    if message is None or message.location is None:
        return
    loc = message.location
    outcome = await context.services.intake.update_live_location(
        actor_of(update), loc.latitude, loc.longitude, loc.horizontal_accuracy
    )
    if Notice.LOCATION_UPDATED in outcome.notices:
        context.services.outbox.wake()


async def on_intake_button(update: Update, context: Context) -> None:
    """Applies a press on a button of the conversation (stale presses are refused politely)."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    if not private_press(update):  # a press in a group (forged or not) never reaches intake
        await query.answer()
        return
    actor = actor_of(update)
    intake = context.services.intake
    parts = query.data.split("|")
    known = len(parts) >= 3 and parts[1].isdigit()
    action = BUTTONS.get(parts[2]) if known else None
    quick = QUICK_BUTTONS.get(parts[2]) if known else None
    if quick is not None:
        outcome = await quick(context.services.quick, actor, int(parts[1]))
    elif action is None:
        outcome = await intake.greet(actor)
        outcome.notices.append(Notice.STALE_BUTTON)
    else:
        try:
            outcome = await action(intake, actor, int(parts[1]), parts[3] if len(parts) > 3 else "")
        except ValueError:  # an argument that is not one of ours: an old or forged button
            outcome = await intake.greet(actor)
            outcome.notices.append(Notice.STALE_BUTTON)
    if Notice.SUBMITTED in outcome.notices:
        context.services.outbox.wake()  # before the reply: operators first
    change_identity = parts[2:3] == ["notme"] and not outcome.notices
    screen = context.views.intake(outcome, change_identity=change_identity)
    answered = answered_text(context, query.message, query.data)
    remember_screen(context, outcome, screen, await show(context.bot, query, screen, answered))


def answered_text(context: Context, message: object, data: str) -> str | None:
    """The pressed message's question followed by the label of the pressed button."""
    if not isinstance(message, Message) or message.text is None:
        return None
    markup = message.reply_markup
    labels = (
        [b.text for row in markup.inline_keyboard for b in row if b.callback_data == data]
        if isinstance(markup, InlineKeyboardMarkup)
        else []
    )
    return context.views.answered(message.text_html, labels[0]) if labels else None
