"""What citizens and admins read about advisories: subscriptions, the composer, the reports.

Callback data: ``m|sub|<action>[|<code>]`` on the citizens' menu; ``b|<action>[|<arg>]`` in
an admin's broadcast composer. Admins are served in the deployment's default language.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.domain.advisory import (
    MAX_CAPTION,
    MAX_TEXT,
    Advisory,
    AdvisoryStatus,
    AudienceCount,
    Progress,
    Target,
    TargetKind,
)
from bot.domain.stats import Stats
from bot.i18n import Translate, gettext_for
from bot.services.advisories import Preview
from bot.services.subscriptions import SubscriptionView
from handlers.views import Screen, Text, Views

RADII_M = (500, 1000, 2000, 5000)
PROGRESS_BAR = 10


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


class AdvisoryViews:
    """Renders subscriptions, the broadcast composer and its reports."""

    def __init__(self, views: Views, kecamatan: dict[str, str]) -> None:
        self.views = views
        self.kecamatan = dict(sorted(kecamatan.items(), key=lambda item: item[1]))
        self.language = views.operator_language

    # -- citizens ---------------------------------------------------------------------------

    def subscription(self, view: SubscriptionView) -> Screen:
        """The citizen's subscription and the choices."""
        citizen = view.citizen
        _ = gettext_for(citizen.language)
        if not citizen.subscribed:
            status = _(
                "🔕 You receive no advisories yet. Subscribe to get warnings of Kota Semarang "
                "(floods, storms, landslides, road closures) in this chat."
            )
        elif view.kecamatan_name:
            status = _(
                "🔔 You receive advisories for Kecamatan {kecamatan} and for the whole city "
                "(since {time})."
            ).format(kecamatan=escape(view.kecamatan_name), time=self._since(citizen.subscribed_at))
        else:
            status = _("🔔 You receive advisories for the whole city (since {time}).").format(
                time=self._since(citizen.subscribed_at)
            )
        rows = [[_button(_("🏙️ The whole city"), "m|sub|city")]]
        if view.offered_code and view.offered_name:
            label = _("📍 Kecamatan {kecamatan} (your last report)").format(
                kecamatan=view.offered_name
            )
            rows.append([_button(label, f"m|sub|kec|{view.offered_code}")])
        rows.append([_button(_("🗺️ Choose a kecamatan"), "m|sub|pick")])
        if citizen.subscribed:
            rows.append([_button(_("🔕 Unsubscribe"), "m|sub|off")])
        notice = []
        if view.changed:
            notice.append(_("✅ Saved.") if citizen.subscribed else _("✅ Unsubscribed."))
        text = "\n\n".join([*notice, status, self.views.fallback(_)])
        return Screen([Text(text, InlineKeyboardMarkup(rows))])

    def kecamatan_menu(self, view: SubscriptionView) -> Screen:
        """The city's kecamatan to subscribe to."""
        _ = gettext_for(view.citizen.language)
        buttons = [_button(name, f"m|sub|kec|{code}") for code, name in self.kecamatan.items()]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        return Screen([Text(_("🗺️ Which kecamatan?"), InlineKeyboardMarkup(rows))])

    def copy(self, advisory: Advisory, language: str) -> str:
        """The advisory as a citizen receives it (text or photo caption)."""
        _ = gettext_for(language)
        header = _("📢 <b>Advisory from Call Center 112 Kota Semarang</b>")
        return f"{header}\n\n{escape(advisory.text)}\n\n{self.views.fallback(_)}"

    def _since(self, moment: datetime | None) -> str:
        return self.views.local_time(moment) if moment is not None else "—"

    # -- the composer (admins) --------------------------------------------------------------

    @property
    def _(self) -> Translate:
        return gettext_for(self.language)

    def not_admin(self) -> Text:
        """Refuses a non-admin."""
        return Text(self._("⛔ Only admins of Call Center 112 may send advisories."))

    def ask_text(self) -> Text:
        """Asks for the advisory's text (or a photo with a caption)."""
        _ = self._
        return Text(
            _(
                "📢 <b>New advisory.</b> Send its text (at most {text} characters), or a photo "
                "with a caption (at most {caption}). /cancel stops."
            ).format(text=MAX_TEXT, caption=MAX_CAPTION)
        )

    def invalid(self, reason: str) -> Text:
        """Explains why the input was refused."""
        _ = self._
        texts = {
            "empty": _("The advisory needs a text. Send it again."),
            "text_too_long": _("That text is too long (at most {n} characters).").format(
                n=MAX_TEXT
            ),
            "caption_too_long": _("That caption is too long (at most {n} characters).").format(
                n=MAX_CAPTION
            ),
            "unknown_kecamatan": _("Choose at least one kecamatan."),
            "unknown_kelurahan": _("No kelurahan of the city has that name. Type it again."),
            "radius": _("Choose a radius between 100 m and 20 km."),
            "no_location": _("Share a location first (📎 → Location)."),
            "not_a_draft": _("This advisory was already sent or discarded."),
        }
        return Text("⚠️ " + texts.get(reason, _("That did not work. Try again.")))

    def ask_target(self) -> Text:
        """Offers the targets."""
        _ = self._
        rows = [
            [_button(_("🏙️ All subscribers"), "b|all")],
            [_button(_("🗺️ Kecamatan"), "b|kec"), _button(_("🏘️ Kelurahan"), "b|kel")],
            [_button(_("📍 Radius around a location"), "b|rad")],
        ]
        return Text(_("🎯 Who is it for?"), InlineKeyboardMarkup(rows))

    def kecamatan_picker(self, chosen: set[str]) -> Text:
        """Kecamatan to toggle, then done."""
        return Text(self._("🗺️ Tap the kecamatan, then «Done»."), self.kecamatan_keyboard(chosen))

    def kecamatan_keyboard(self, chosen: set[str]) -> InlineKeyboardMarkup:
        """The picker's buttons, the chosen ones ticked."""
        buttons = [
            _button(("✅ " if code in chosen else "") + name, f"b|k|{code}")
            for code, name in self.kecamatan.items()
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([_button(self._("➡️ Done ({n} chosen)").format(n=len(chosen)), "b|kdone")])
        return InlineKeyboardMarkup(rows)

    def ask_kelurahan(self) -> Text:
        """Asks for a kelurahan name."""
        return Text(self._("🏘️ Type the name of the kelurahan (for example: Pleburan)."))

    def kelurahan_choice(self, options: list[tuple[str, str, str]]) -> Text:
        """Kelurahan of the same name in different kecamatan."""
        _ = self._
        rows = [
            [_button(f"{name} ({kecamatan})", f"b|l|{code}")] for code, name, kecamatan in options
        ]
        return Text(_("Several kelurahan have that name. Which one?"), InlineKeyboardMarkup(rows))

    def ask_location(self) -> Text:
        """Asks for the centre of the radius."""
        _ = self._
        keyboard = ReplyKeyboardMarkup(
            [[KeyboardButton(_("📍 Share my location"), request_location=True)]],
            resize_keyboard=True, one_time_keyboard=True,
        )  # fmt: skip
        return Text(
            _("📍 Share the centre: your location, or any point (📎 → Location)."), keyboard
        )

    def ask_radius(self) -> Text:
        """Offers radii (or a typed number of metres)."""
        _ = self._
        labels = {500: "500 m", 1000: "1 km", 2000: "2 km", 5000: "5 km"}
        rows = [[_button(labels[r], f"b|r|{r}") for r in RADII_M]]
        return Text(
            _("⭕ How far around it? Tap one or type metres (100–20000)."),
            InlineKeyboardMarkup(rows),
        )

    def target_label(self, target: Target | None) -> str:
        """Describes a target."""
        _ = self._
        if target is None or target.kind is TargetKind.ALL:
            return _("all subscribers (the whole city)")
        if target.kind is TargetKind.KECAMATAN:
            names = ", ".join(self.kecamatan.get(code, code) for code in target.codes)
            return _("Kecamatan {names}").format(names=escape(names))
        if target.kind is TargetKind.KELURAHAN:
            return _("Kelurahan {codes}").format(codes=escape(", ".join(target.codes)))
        return _("{radius:.0f} m around {lat:.5f}, {lon:.5f}").format(
            radius=target.radius_m or 0, lat=target.lat or 0, lon=target.lon or 0
        )

    def preview(self, preview: Preview, kelurahan: dict[str, str]) -> Screen:
        """The advisory as citizens will see it, its target and recipient count, confirm."""
        _ = self._
        advisory, audience = preview.advisory, preview.audience
        target = advisory.target
        where = self.target_label(target)
        if target is not None and target.kind is TargetKind.KELURAHAN:
            where = _("Kelurahan {names}").format(
                names=escape(", ".join(kelurahan.get(c, c) for c in target.codes))
            )
        lines = [
            _("👁️ <b>Preview</b> — the advisory as citizens receive it is below."),
            _("🎯 Target: {where}").format(where=where),
            _("👥 Recipients now: <b>{total}</b> ({city} for the whole city, {area} for the "
              "kecamatan touched)").format(
                total=audience.total, city=audience.city_wide, area=audience.by_area
            ),
        ]  # fmt: skip
        outside = target is not None and target.kind is not TargetKind.ALL
        if outside and not audience.kecamatan_codes:
            lines.append(_("⚠️ The target does not touch the city: nobody would receive it."))
        rows = [
            [_button(_("✅ Send now"), "b|ok"), _button(_("🎯 Other target"), "b|back")],
            [_button(_("🗑️ Discard"), "b|no")],
        ]
        sample = Text(self.copy(advisory, self.language))
        return Screen([sample, Text("\n".join(lines), InlineKeyboardMarkup(rows))])

    def draft_offer(self, advisory: Advisory, audience: AudienceCount) -> Text:
        """A draft made from a CAP alert, offered to an admin to review and send."""
        _ = self._
        lines = [
            _("📥 <b>Draft advisory #{id}</b> from an official alert — nothing is sent before "
              "you confirm.").format(id=advisory.id),
            _("🎯 Target: {where}").format(where=self.target_label(advisory.target)),
            _("👥 Recipients now: <b>{total}</b> ({city} for the whole city, {area} for the "
              "kecamatan touched)").format(
                total=audience.total, city=audience.city_wide, area=audience.by_area
            ),
            f"<blockquote>{escape(advisory.text)}</blockquote>",
        ]  # fmt: skip
        markup = InlineKeyboardMarkup([[_button(_("✍️ Review and send"), f"b|take|{advisory.id}")]])
        return Text("\n".join(lines), markup)

    def confirmed(self, advisory: Advisory) -> Text:
        """Confirms the start of sending."""
        return Text(
            self._(
                "🚀 Advisory #{id} is being sent to {n} recipients. Progress follows here; "
                "/broadcast_cancel stops it."
            ).format(id=advisory.id, n=advisory.recipients)
        )

    def discarded(self) -> Text:
        """Confirms a discarded draft."""
        return Text(self._("🗑️ Advisory discarded; nothing was sent."))

    def nothing_to_cancel(self) -> Text:
        """No advisory is being sent."""
        return Text(self._("No advisory is being sent."))

    def cancelling(self, advisory: Advisory) -> Text:
        """Confirms a cancel (the final report follows)."""
        return Text(
            self._("⛔ Advisory #{id} stopped; the final report follows.").format(id=advisory.id)
        )

    def progress(self, advisory: Advisory, progress: Progress, *, final: bool) -> str:
        """The progress message (edited as it goes) or the final report."""
        _ = self._
        counts = _("sent {sent} · blocked {blocked} · failed {failed}").format(
            sent=progress.sent, blocked=progress.blocked, failed=progress.failed
        )
        if progress.cancelled:
            counts += " · " + _("not sent {n}").format(n=progress.cancelled)
        if final and advisory.status is AdvisoryStatus.CANCELLED:
            title = _("⛔ <b>Advisory #{id} cancelled.</b>").format(id=advisory.id)
        elif final:
            title = _("✅ <b>Advisory #{id} finished.</b>").format(id=advisory.id)
        else:
            title = _("📤 <b>Advisory #{id}</b> is being sent…").format(id=advisory.id)
        total = max(progress.recipients, 1)
        filled = round(PROGRESS_BAR * progress.done / total)
        bar = "▓" * filled + "░" * (PROGRESS_BAR - filled)
        return f"{title}\n{bar} {progress.done}/{progress.recipients}\n{counts}"

    # -- statistics (admins) ----------------------------------------------------------------

    def milestone_labels(self) -> dict[str, str]:
        """Names of the milestones (chart and text)."""
        _ = self._
        return {
            "claim": _("claimed"), "dispatch": _("dispatched"), "ack": _("acknowledged"),
            "on_scene": _("on scene"),
        }  # fmt: skip

    def chart_titles(self) -> tuple[str, str]:
        """Titles of the chart's two panels."""
        return self._("From report to … (minutes)"), self._("Reports by category")

    def stats(self, stats: Stats) -> str:
        """The statistics of a period as text."""
        _ = self._
        lines = [
            _("📊 <b>Statistics</b> {since} – {until}").format(
                since=self.views.local_time(stats.since), until=self.views.local_time(stats.until)
            ),
            _("Reports: <b>{n}</b>").format(n=stats.total),
            _("By category: {list}").format(list=_listing(stats.by_category)),
            _("By kecamatan: {list}").format(list=_listing(stats.by_kecamatan[:8])),
            _("By disposition: {list}").format(list=_listing(stats.by_disposition)),
            _("⏱️ From report to (p50 / p90, count):"),
        ]
        for name, label in self.milestone_labels().items():
            interval = stats.intervals[name]
            lines.append(
                f"• {label}: {_duration(interval.p50)} / {_duration(interval.p90)} "
                f"({interval.count})"
            )
        share = stats.within_target_share
        lines.append(
            _("🎯 Help on scene within 10 minutes: {share} ({n} of {total} arrivals)").format(
                share=_percent(share), n=stats.on_scene_within_target, total=stats.on_scene_count
            )
        )
        lines.append(
            _("🚫 Prank {prank} · ghost {ghost} (of {n} with a disposition)").format(
                prank=_percent(stats.prank_rate),
                ghost=_percent(stats.ghost_rate),
                n=stats.with_disposition,
            )
        )
        return "\n".join(lines)


def _listing(items: list[tuple[str, int]]) -> str:
    return " · ".join(f"{escape(name)} {count}" for name, count in items) or "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.0f} %"
