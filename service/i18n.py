"""Languages of the guardian-facing texts (emails and pages): English and Slovenian.

Strings are looked up by key (``t("review.heading", operator=...)``), falling back to English
and then to the key itself. Placeholders use ``str.format`` syntax; a ``count`` parameter
selects the plural form of the locale (``key.one``, ``key.two``, ``key.few``, ``key.other``).
Slovenian texts address the guardian formally ("vi").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

LOCALES = ("en", "sl")
DEFAULT_LOCALE = "en"

_MONTHS: Mapping[str, tuple[str, ...]] = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "sl": (
        "januar",
        "februar",
        "marec",
        "april",
        "maj",
        "junij",
        "julij",
        "avgust",
        "september",
        "oktober",
        "november",
        "december",
    ),
}


class Translate(Protocol):
    """``t(key, **params) -> str``; usable wherever a ``Callable[[str], str]`` is expected."""

    def __call__(self, key: str, /, **params: object) -> str: ...


def negotiate_locale(value: str | None) -> str:
    """The supported locale for a tag ("sl-SI", "SL", "sl_SI") or an Accept-Language header.

    Anything unknown, empty or None gives English.
    """
    if not value:
        return DEFAULT_LOCALE
    candidates: list[tuple[float, int, str]] = []
    for index, part in enumerate(value.split(",")):
        tag, *params = part.split(";")
        quality = 1.0
        for param in params:
            name, _, raw = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(raw)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().replace("_", "-").split("-")[0].lower()
        if quality > 0 and primary in LOCALES:
            candidates.append((-quality, index, primary))
    if not candidates:
        return DEFAULT_LOCALE
    return min(candidates)[2]


def plural_category(locale: str, count: int) -> str:
    """CLDR plural category of an integer: English one/other, Slovenian one/two/few/other."""
    n = abs(count)
    if negotiate_locale(locale) == "sl":
        last_two = n % 100
        if last_two == 1:
            return "one"
        if last_two == 2:
            return "two"
        if last_two in (3, 4):
            return "few"
        return "other"
    return "one" if n == 1 else "other"


def format_datetime(dt: datetime, locale: str) -> str:
    """A readable UTC date and time, without Babel.

    "30 November 2026, 14:05 UTC" in English, "30. november 2026 ob 14:05 UTC" in Slovenian.

    A naive datetime is taken to be UTC already.
    """
    moment = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    loc = negotiate_locale(locale)
    month = _MONTHS[loc][moment.month - 1]
    clock = f"{moment.hour:02d}:{moment.minute:02d}"
    if loc == "sl":
        return f"{moment.day}. {month} {moment.year} ob {clock} UTC"
    return f"{moment.day} {month} {moment.year}, {clock} UTC"


class _KeepMissing(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def translator(locale: str) -> Translate:
    """The UI-string lookup for ``locale`` (negotiated; unknown means English)."""
    loc = negotiate_locale(locale)
    chain = [(loc, MESSAGES[loc])]
    if loc != DEFAULT_LOCALE:
        chain.append((DEFAULT_LOCALE, MESSAGES[DEFAULT_LOCALE]))

    def t(key: str, /, **params: object) -> str:
        count = params.get("count")
        message: str | None = None
        for table_locale, table in chain:
            keys = [key]
            if isinstance(count, int) and not isinstance(count, bool):
                keys = [f"{key}.{plural_category(table_locale, count)}", f"{key}.other", key]
            message = next((table[k] for k in keys if k in table), None)
            if message is not None:
                break
        if message is None:
            if key.startswith("category."):
                return key.removeprefix("category.")
            return key
        return message.format_map(_KeepMissing(params)) if params else message

    return t


MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        # Shared
        "common.skip": "Skip to content",
        "common.required": "Required",
        "common.optional": "Optional",
        "common.data_used": "Data used",
        "common.retention.one": "Kept for at most {count} day",
        "common.retention.other": "Kept for at most {count} days",
        "common.privacy_notice": "Privacy notice",
        "common.close": "You can close this page now.",
        # Data categories
        "category.account": "Account details (username and sign-in data)",
        "category.lessons": "Lessons (times, tutor and topics covered)",
        "category.progress": "Learning progress (exercise results and tutor feedback)",
        "category.guardian_contact": "Your email address",
        # Emails, shared parts
        "email.greeting": "Hello,",
        "email.signoff": "Kind regards,",
        "email.contact": "Questions or requests about your child's data? Reply to this email.",
        "email.privacy": "Read the full privacy notice:",
        "email.link_fallback": "If the button does not work, copy this address into your browser:",
        "email.rights.heading": "Your rights",
        "email.rights.text": (
            "Consent is the legal basis for using your child's data for these purposes. You can "
            "withdraw it at any time; this does not affect the lawfulness of what was done before "
            "the withdrawal. You can ask us for access to your child's data, a copy of it, its "
            "correction or its deletion, and you can lodge a complaint with a data protection "
            "supervisory authority."
        ),
        # Email: consent request (direct notice)
        "email.request.subject": "{operator}: your consent is needed for your child's account",
        "email.request.intro": (
            "A child has signed up for {operator} and gave this email address as the address of "
            "a parent or guardian. Because of the child's age, the child may only use the "
            "service with the consent of a parent or legal guardian."
        ),
        "email.request.why_address": (
            "We received your email address from the child's signup and use it only to ask for "
            "this consent. If you give consent, we will also send you a confirmation with a link "
            "to withdraw it."
        ),
        "email.request.nothing_before": (
            "Until you give consent, {operator} does not collect or use any data from your "
            "child's use of the service. If you refuse, nothing will be collected."
        ),
        "email.request.purposes_heading": "What we ask your consent for",
        "email.request.purposes_intro": (
            "You can decide on each purpose separately. Required purposes are needed for the "
            "service to work: refusing one of them means refusing consent altogether."
        ),
        "email.request.how_heading": "How to give or refuse consent",
        "email.request.how": (
            'Open the link below, review the details and choose "Give consent" or "Refuse '
            "consent\". You will be asked to confirm that you are the child's parent or legal "
            "guardian."
        ),
        "email.request.button": "Review the request",
        "email.request.expiry": (
            "The link works for one decision only and expires on {expires_at}."
        ),
        "email.request.no_answer": (
            "If you do not answer before the link expires, we will delete your email address "
            "and this request."
        ),
        "email.request.after": (
            "You can withdraw your consent at any time, as easily as you gave it."
        ),
        "email.request.not_guardian": (
            "If you are not this child's parent or legal guardian, please ignore this email. "
            "We will not write to you again about this request."
        ),
        # Email: confirmation (email plus)
        "email.confirmation.subject": "{operator}: confirmation of your consent",
        "email.confirmation.intro": (
            "This confirms the consent you gave for your child's use of {operator}."
        ),
        "email.confirmation.granted_at": "Consent given on",
        "email.confirmation.valid_until": "Valid until",
        "email.confirmation.granted": "You consented to",
        "email.confirmation.refused": "You refused",
        "email.confirmation.withdraw": (
            "You can withdraw your consent at any time with the link below. It opens a page "
            "where you confirm with one click; there you can also ask us to delete your child's "
            "data and your email address."
        ),
        "email.confirmation.button": "Withdraw consent",
        "email.confirmation.not_you": (
            "If you did not give this consent, please withdraw it with the link above and reply "
            "to this email to let us know."
        ),
        # Email: withdrawn
        "email.withdrawn.subject": "{operator}: your consent has been withdrawn",
        "email.withdrawn.intro": (
            "You have withdrawn your consent. {operator} no longer uses your child's data for "
            "the purposes below."
        ),
        "email.withdrawn.withdrawn_at": "Withdrawn on",
        "email.withdrawn.purposes": "Consent withdrawn for",
        "email.withdrawn.delete": (
            "If you also want your child's data deleted, reply to this email."
        ),
        "email.withdrawn.not_you": "If you did not withdraw your consent, reply to this email.",
        # Email: revoked by support staff
        "email.replaced.subject": "{operator}: your consent was replaced by another guardian's",
        "email.replaced.intro": (
            "Another parent or guardian has just given consent for the same child, and that "
            "consent now replaces the one you gave. Your consent is no longer in force."
        ),
        "email.replaced.contact": (
            "If you do not know who did this, or think it is a mistake, reply to this email at "
            "once so we can look into it."
        ),
        "email.revoked.subject": "{operator}: your consent has ended",
        "email.revoked.intro": (
            "Our support team has ended the consent you gave for your child. Your child's data "
            "is no longer used for the purposes below."
        ),
        "email.revoked.revoked_at": "Date",
        "email.revoked.reason": "Reason",
        "email.revoked.purposes": "Consent ended for",
        "email.revoked.contact": (
            "If you have questions or think this is a mistake, reply to this email."
        ),
        # Page: review
        "review.title": "Consent request",
        "review.heading": "{operator} asks for your consent",
        "review.intro": (
            "A child gave your email address when signing up for {operator}. Because of the "
            "child's age, a parent or legal guardian must give consent before the child can use "
            "the service. Nothing is collected about the child's use of the service until you "
            "give consent."
        ),
        "review.privacy_link": "Read the full privacy notice",
        "review.expires": ("You can submit one decision with this link, until {expires_at}."),
        "review.errors_heading": "Please check the following:",
        "review.purposes_legend": "What you decide on",
        "review.purposes_help": (
            "Tick the purposes you agree to. Required purposes are needed for the service to "
            "work: refusing one of them means refusing consent altogether."
        ),
        "review.required_note": (
            "Needed for the service to work. If you leave it unticked, consent is refused."
        ),
        "review.attestation_legend": "Your confirmation",
        "review.attestation": (
            "I am the parent or legal guardian of this child and have parental responsibility"
        ),
        "review.decision_help": (
            '"Give consent" applies to the purposes you ticked. "Refuse consent" refuses '
            "everything: no data about the child will be used."
        ),
        "review.grant": "Give consent",
        "review.deny": "Refuse consent",
        "review.after": (
            "After you give consent, we send a confirmation to your email address. You can "
            "withdraw your consent at any time, as easily as you gave it."
        ),
        "review.not_guardian": (
            "Not this child's parent or legal guardian? Close this page without answering. Your "
            "email address will be deleted when the link expires."
        ),
        # Page: result
        "result.granted.title": "Consent given",
        "result.granted.heading": "Thank you, your consent has been recorded",
        "result.granted.list": "You consented to:",
        "result.refused.list": "You refused:",
        "result.confirmation_soon": (
            "We will shortly send a confirmation to your email address, with a link to "
            "withdraw your consent."
        ),
        "result.confirmation_later.one": (
            "In about {count} hour we will send a confirmation to your email address, with a "
            "link to withdraw your consent."
        ),
        "result.confirmation_later.other": (
            "In about {count} hours we will send a confirmation to your email address, with a "
            "link to withdraw your consent."
        ),
        "result.withdraw_hint": "You can withdraw your consent at any time:",
        "result.withdraw_link": "Withdraw your consent",
        "result.denied.title": "Consent refused",
        "result.denied.heading": "Consent refused",
        "result.denied.text": (
            "You refused consent. No data about your child will be collected or used."
        ),
        "result.denied.cleanup": (
            "Your email address and this request will be deleted after a short period."
        ),
        # Page: withdraw
        "withdraw.title": "Withdraw consent",
        "withdraw.heading": "Withdraw your consent",
        "withdraw.intro": "You gave {operator} consent for:",
        "withdraw.granted_at": "Consent given on",
        "withdraw.effect": (
            "If you withdraw, your child's data will no longer be used for these purposes and "
            "your child will no longer be able to use the service. Withdrawal does not affect "
            "the lawfulness of what was done before it."
        ),
        "withdraw.erase": "Also delete my child's data and my email address",
        "withdraw.erase_help": (
            "If you leave this unticked, the data is deleted when its storage period ends."
        ),
        "withdraw.confirm": "Withdraw consent",
        "withdraw.keep": "If you do not want to withdraw your consent, just close this page.",
        # Page: withdrawn
        "withdrawn.title": "Consent withdrawn",
        "withdrawn.heading": "Your consent has been withdrawn",
        "withdrawn.list": "You withdrew your consent for:",
        "withdrawn.stopped": "Your child's data is no longer used for these purposes.",
        "withdrawn.erased": "Your child's data and your email address have been deleted.",
        "withdrawn.not_erased": (
            "We will send you a confirmation by email. If you also want your child's data "
            "deleted, reply to that email."
        ),
        # Page: link problems
        "link.title": "Link problem",
        "link.next_heading": "What you can do",
        "link.unknown.heading": "This link is not valid",
        "link.unknown.text": (
            "We could not find this link. It may be incomplete if it was copied from the email "
            "by hand."
        ),
        "link.unknown.next": (
            "Open the link directly from the email. If it still does not work, ask your child "
            "to send a new request from the signup page."
        ),
        "link.expired.heading": "This link has expired",
        "link.expired.text": (
            "The time to answer this request has passed, so the request is closed. Your email "
            "address will be deleted."
        ),
        "link.expired.next": (
            "If you want to give consent, ask your child to send a new request from the signup "
            "page. You will receive a new email."
        ),
        "link.used.heading": "This link has already been used",
        "link.used.text": (
            "A decision has already been submitted with this link. Each link works only once."
        ),
        "link.used.next": (
            "To withdraw a consent you gave, use the link in your confirmation email. To decide "
            "again, ask your child to send a new request from the signup page."
        ),
        "link.locked.heading": "This link has been locked",
        "link.locked.text": (
            "There were too many unsuccessful attempts with this link, so it was locked for "
            "your safety."
        ),
        "link.locked.next": (
            "Ask your child to send a new request from the signup page. You will receive a new "
            "email."
        ),
        "link.not_required.heading": "Your consent is no longer needed",
        "link.not_required.text": (
            "The child has reached the age at which they may agree to the service themselves, "
            "so there is nothing left for you to decide."
        ),
        "link.not_required.next": "No action is needed.",
        "link.superseded.heading": "This link was replaced by a newer request",
        "link.superseded.text": (
            "A newer consent request was sent for the same child, so this one can no longer "
            "be answered."
        ),
        "link.superseded.next": "Please use the link in the most recent email from us.",
        "link.not_live.heading": "This consent is no longer active",
        "link.not_live.text": (
            "The consent this link belongs to has already been withdrawn, revoked or has "
            "expired, so there is nothing left to change."
        ),
        "link.not_live.next": (
            "If you want your child to use the service again, ask them to send a new request "
            "from the signup page."
        ),
        # Page: errors
        "error.title": "Error",
        "error.heading.400": "The request could not be processed",
        "error.heading.403": "This action is not allowed",
        "error.heading.404": "Page not found",
        "error.heading.429": "Too many attempts",
        "error.heading.503": "Temporarily unavailable",
        "error.heading.other": "Something went wrong",
        "error.retry_seconds.one": "Please try again in {count} second.",
        "error.retry_seconds.other": "Please try again in {count} seconds.",
        "error.retry_minutes.one": "Please try again in {count} minute.",
        "error.retry_minutes.other": "Please try again in {count} minutes.",
        "error.retry_later": "Please try again later.",
        "error.form_expired": (
            "The form could not be accepted: it has expired or your browser did not send its "
            "security cookie. Go back, reload the page and submit it again."
        ),
        "error.status": "Error code: {status}",
    },
    "sl": {
        # Shared
        "common.skip": "Preskoči na vsebino",
        "common.required": "Obvezno",
        "common.optional": "Neobvezno",
        "common.data_used": "Uporabljeni podatki",
        "common.retention.one": "Hramba: največ {count} dan",
        "common.retention.two": "Hramba: največ {count} dneva",
        "common.retention.few": "Hramba: največ {count} dni",
        "common.retention.other": "Hramba: največ {count} dni",
        "common.privacy_notice": "Politika zasebnosti",
        "common.close": "To stran lahko zdaj zaprete.",
        # Data categories
        "category.account": "Podatki o računu (uporabniško ime in podatki za prijavo)",
        "category.lessons": "Ure inštrukcij (termini, inštruktor in obravnavane teme)",
        "category.progress": ("Učni napredek (rezultati vaj in povratne informacije inštruktorja)"),
        "category.guardian_contact": "Vaš e-poštni naslov",
        # Emails, shared parts
        "email.greeting": "Pozdravljeni,",
        "email.signoff": "Lep pozdrav,",
        "email.contact": (
            "Imate vprašanje ali zahtevo glede podatkov vašega otroka? Odgovorite na to sporočilo."
        ),
        "email.privacy": "Celotna politika zasebnosti:",
        "email.link_fallback": "Če gumb ne deluje, kopirajte ta naslov v brskalnik:",
        "email.rights.heading": "Vaše pravice",
        "email.rights.text": (
            "Pravna podlaga za uporabo podatkov vašega otroka za te namene je soglasje. Kadar "
            "koli ga lahko prekličete; preklic ne vpliva na zakonitost obdelave pred preklicem. "
            "Od nas lahko zahtevate dostop do podatkov vašega otroka, njihovo kopijo, popravek "
            "ali izbris, pritožbo pa lahko vložite tudi pri nadzornem organu za varstvo osebnih "
            "podatkov."
        ),
        # Email: consent request (direct notice)
        "email.request.subject": "{operator}: za račun vašega otroka potrebujemo vaše soglasje",
        "email.request.intro": (
            "Otrok se je prijavil v storitev {operator} in kot naslov starša ali skrbnika "
            "navedel ta e-poštni naslov. Zaradi otrokove starosti lahko storitev uporablja le s "
            "soglasjem starša ali zakonitega skrbnika."
        ),
        "email.request.why_address": (
            "Vaš e-poštni naslov smo prejeli ob otrokovi prijavi in ga uporabljamo samo za to, "
            "da vas prosimo za soglasje. Če soglasje date, vam nanj pošljemo še potrditev s "
            "povezavo za preklic."
        ),
        "email.request.nothing_before": (
            "Dokler soglasja ne date, {operator} ne zbira in ne uporablja nobenih podatkov o "
            "otrokovi uporabi storitve. Če soglasje zavrnete, ne bomo zbrali ničesar."
        ),
        "email.request.purposes_heading": "Za kaj vas prosimo za soglasje",
        "email.request.purposes_intro": (
            "O vsakem namenu se lahko odločite posebej. Obvezni nameni so nujni za delovanje "
            "storitve: če katerega od njih zavrnete, to pomeni, da soglasje zavrnete v celoti."
        ),
        "email.request.how_heading": "Kako date ali zavrnete soglasje",
        "email.request.how": (
            "Odprite spodnjo povezavo, preglejte podrobnosti in izberite »Dajem soglasje« ali "
            "»Zavračam soglasje«. Potrditi boste morali, da ste otrokov starš ali zakoniti "
            "skrbnik."
        ),
        "email.request.button": "Preglejte zahtevo",
        "email.request.expiry": (
            "Povezava velja samo za eno odločitev. Rok za odgovor: {expires_at}."
        ),
        "email.request.no_answer": (
            "Če do izteka roka ne odgovorite, bomo vaš e-poštni naslov in to zahtevo izbrisali."
        ),
        "email.request.after": (
            "Soglasje lahko kadar koli prekličete, enako preprosto, kot ste ga dali."
        ),
        "email.request.not_guardian": (
            "Če niste otrokov starš ali zakoniti skrbnik, to sporočilo prezrite. Zaradi te "
            "zahteve vam ne bomo več pisali."
        ),
        # Email: confirmation (email plus)
        "email.confirmation.subject": "{operator}: potrditev vašega soglasja",
        "email.confirmation.intro": (
            "S tem sporočilom potrjujemo soglasje, ki ste ga dali za otrokovo uporabo storitve "
            "{operator}."
        ),
        "email.confirmation.granted_at": "Datum soglasja",
        "email.confirmation.valid_until": "Velja do",
        "email.confirmation.granted": "Soglasje ste dali za",
        "email.confirmation.refused": "Zavrnili ste",
        "email.confirmation.withdraw": (
            "Soglasje lahko kadar koli prekličete s spodnjo povezavo. Odpre se stran, na kateri "
            "preklic potrdite z enim klikom; tam lahko zahtevate tudi izbris podatkov vašega "
            "otroka in vašega e-poštnega naslova."
        ),
        "email.confirmation.button": "Preklic soglasja",
        "email.confirmation.not_you": (
            "Če tega soglasja niste dali vi, ga prekličite s povezavo zgoraj in nam to sporočite "
            "z odgovorom na to sporočilo."
        ),
        # Email: withdrawn
        "email.withdrawn.subject": "{operator}: vaše soglasje je preklicano",
        "email.withdrawn.intro": (
            "Svoje soglasje ste preklicali. Podatkov vašega otroka za spodaj navedene namene ne "
            "uporabljamo več."
        ),
        "email.withdrawn.withdrawn_at": "Datum preklica",
        "email.withdrawn.purposes": "Preklicano soglasje za",
        "email.withdrawn.delete": (
            "Če želite, da podatke vašega otroka tudi izbrišemo, odgovorite na to sporočilo."
        ),
        "email.withdrawn.not_you": ("Če soglasja niste preklicali vi, odgovorite na to sporočilo."),
        # Email: revoked by support staff
        "email.replaced.subject": (
            "{operator}: vaše soglasje je nadomestilo soglasje drugega skrbnika"
        ),
        "email.replaced.intro": (
            "Drug starš ali zakoniti skrbnik je pravkar dal soglasje za istega otroka in to "
            "soglasje zdaj nadomešča vaše. Vaše soglasje ne velja več."
        ),
        "email.replaced.contact": (
            "Če ne veste, kdo je to storil, ali menite, da gre za napako, nam takoj odgovorite na "
            "to sporočilo, da zadevo preverimo."
        ),
        "email.revoked.subject": "{operator}: vaše soglasje je prenehalo veljati",
        "email.revoked.intro": (
            "Naša podporna ekipa je preklicala soglasje, ki ste ga dali za svojega otroka. "
            "Podatkov vašega otroka za spodaj navedene namene ne uporabljamo več."
        ),
        "email.revoked.revoked_at": "Datum",
        "email.revoked.reason": "Razlog",
        "email.revoked.purposes": "Soglasje je prenehalo veljati za",
        "email.revoked.contact": (
            "Če imate vprašanja ali menite, da gre za napako, odgovorite na to sporočilo."
        ),
        # Page: review
        "review.title": "Prošnja za soglasje",
        "review.heading": "{operator} vas prosi za soglasje",
        "review.intro": (
            "Otrok je ob prijavi v storitev {operator} navedel vaš e-poštni naslov. Zaradi "
            "otrokove starosti mora starš ali zakoniti skrbnik dati soglasje, preden lahko otrok "
            "storitev uporablja. Dokler soglasja ne date, o otrokovi uporabi storitve ne zbiramo "
            "ničesar."
        ),
        "review.privacy_link": "Preberite celotno politiko zasebnosti",
        "review.expires": (
            "S to povezavo lahko oddate eno odločitev. Rok za odgovor: {expires_at}."
        ),
        "review.errors_heading": "Preverite naslednje:",
        "review.purposes_legend": "O čem se odločate",
        "review.purposes_help": (
            "Označite namene, s katerimi soglašate. Obvezni nameni so nujni za delovanje "
            "storitve: če katerega od njih zavrnete, to pomeni, da soglasje zavrnete v celoti."
        ),
        "review.required_note": (
            "Nujno za delovanje storitve. Če tega namena ne označite, je soglasje zavrnjeno."
        ),
        "review.attestation_legend": "Vaša potrditev",
        "review.attestation": (
            "Sem starš ali zakoniti skrbnik tega otroka in nosilec starševske odgovornosti zanj"
        ),
        "review.decision_help": (
            "»Dajem soglasje« velja za označene namene. »Zavračam soglasje« zavrne vse: "
            "podatki o otroku ne bodo uporabljeni."
        ),
        "review.grant": "Dajem soglasje",
        "review.deny": "Zavračam soglasje",
        "review.after": (
            "Ko soglasje date, vam na e-poštni naslov pošljemo potrditev. Soglasje lahko kadar "
            "koli prekličete, enako preprosto, kot ste ga dali."
        ),
        "review.not_guardian": (
            "Niste otrokov starš ali zakoniti skrbnik? Zaprite to stran brez odgovora. Vaš "
            "e-poštni naslov bomo izbrisali, ko povezava poteče."
        ),
        # Page: result
        "result.granted.title": "Soglasje dano",
        "result.granted.heading": "Hvala, vaše soglasje je zabeleženo",
        "result.granted.list": "Soglasje ste dali za:",
        "result.refused.list": "Zavrnili ste:",
        "result.confirmation_soon": (
            "Na vaš e-poštni naslov bomo v kratkem poslali potrditev s povezavo za preklic "
            "soglasja."
        ),
        "result.confirmation_later.one": (
            "Čez približno {count} uro bomo na vaš e-poštni naslov poslali potrditev s "
            "povezavo za preklic soglasja."
        ),
        "result.confirmation_later.two": (
            "Čez približno {count} uri bomo na vaš e-poštni naslov poslali potrditev s "
            "povezavo za preklic soglasja."
        ),
        "result.confirmation_later.few": (
            "Čez približno {count} ure bomo na vaš e-poštni naslov poslali potrditev s "
            "povezavo za preklic soglasja."
        ),
        "result.confirmation_later.other": (
            "Čez približno {count} ur bomo na vaš e-poštni naslov poslali potrditev s "
            "povezavo za preklic soglasja."
        ),
        "result.withdraw_hint": "Soglasje lahko kadar koli prekličete:",
        "result.withdraw_link": "Prekličite soglasje",
        "result.denied.title": "Soglasje zavrnjeno",
        "result.denied.heading": "Soglasje je zavrnjeno",
        "result.denied.text": (
            "Soglasje ste zavrnili. Nobeni podatki o vašem otroku ne bodo zbrani ali uporabljeni."
        ),
        "result.denied.cleanup": (
            "Vaš e-poštni naslov in to zahtevo bomo po krajšem času izbrisali."
        ),
        # Page: withdraw
        "withdraw.title": "Preklic soglasja",
        "withdraw.heading": "Preklic soglasja",
        "withdraw.intro": "Za storitev {operator} ste dali soglasje za:",
        "withdraw.granted_at": "Datum soglasja",
        "withdraw.effect": (
            "Po preklicu podatkov vašega otroka za te namene ne bomo več uporabljali in otrok "
            "storitve ne bo mogel več uporabljati. Preklic ne vpliva na zakonitost obdelave pred "
            "preklicem."
        ),
        "withdraw.erase": "Izbrišite tudi podatke mojega otroka in moj e-poštni naslov",
        "withdraw.erase_help": ("Če tega ne označite, podatke izbrišemo ob izteku obdobja hrambe."),
        "withdraw.confirm": "Preklicujem soglasje",
        "withdraw.keep": "Če soglasja ne želite preklicati, to stran preprosto zaprite.",
        # Page: withdrawn
        "withdrawn.title": "Soglasje preklicano",
        "withdrawn.heading": "Vaše soglasje je preklicano",
        "withdrawn.list": "Preklicali ste soglasje za:",
        "withdrawn.stopped": "Podatkov vašega otroka za te namene ne uporabljamo več.",
        "withdrawn.erased": "Podatki vašega otroka in vaš e-poštni naslov so izbrisani.",
        "withdrawn.not_erased": (
            "Potrditev vam bomo poslali po e-pošti. Če želite, da izbrišemo tudi podatke "
            "vašega otroka, odgovorite nanjo."
        ),
        # Page: link problems
        "link.title": "Težava s povezavo",
        "link.next_heading": "Kaj lahko storite",
        "link.unknown.heading": "Ta povezava ni veljavna",
        "link.unknown.text": (
            "Te povezave ne najdemo. Morda ni popolna, če ste jo iz sporočila kopirali ročno."
        ),
        "link.unknown.next": (
            "Povezavo odprite neposredno iz sporočila. Če še vedno ne deluje, prosite otroka, "
            "naj na strani za prijavo pošlje novo zahtevo."
        ),
        "link.expired.heading": "Ta povezava je potekla",
        "link.expired.text": (
            "Rok za odgovor na to zahtevo je potekel, zato je zahteva zaprta. Vaš e-poštni "
            "naslov bomo izbrisali."
        ),
        "link.expired.next": (
            "Če želite dati soglasje, prosite otroka, naj na strani za prijavo pošlje novo "
            "zahtevo. Prejeli boste novo sporočilo."
        ),
        "link.used.heading": "Ta povezava je že bila uporabljena",
        "link.used.text": (
            "S to povezavo je bila odločitev že oddana. Vsaka povezava deluje samo enkrat."
        ),
        "link.used.next": (
            "Če želite preklicati dano soglasje, uporabite povezavo v potrditvenem sporočilu. Če "
            "se želite odločiti znova, prosite otroka, naj na strani za prijavo pošlje novo "
            "zahtevo."
        ),
        "link.locked.heading": "Ta povezava je zaklenjena",
        "link.locked.text": (
            "S to povezavo je bilo preveč neuspešnih poskusov, zato smo jo zaradi vaše varnosti "
            "zaklenili."
        ),
        "link.locked.next": (
            "Prosite otroka, naj na strani za prijavo pošlje novo zahtevo. Prejeli boste novo "
            "sporočilo."
        ),
        "link.not_required.heading": "Vaše soglasje ni več potrebno",
        "link.not_required.text": (
            "Otrok je dosegel starost, pri kateri lahko sam privoli v uporabo storitve, zato vam "
            "ni treba ničesar več odločiti."
        ),
        "link.not_required.next": "Ničesar vam ni treba storiti.",
        "link.superseded.heading": "To povezavo je nadomestila novejša zahteva",
        "link.superseded.text": (
            "Za istega otroka je bila poslana novejša zahteva za soglasje, zato na to ni več "
            "mogoče odgovoriti."
        ),
        "link.superseded.next": "Uporabite povezavo iz našega najnovejšega sporočila.",
        "link.not_live.heading": "To soglasje ni več veljavno",
        "link.not_live.text": (
            "Soglasje, na katero se nanaša ta povezava, je bilo že preklicano ali je poteklo, "
            "zato ga ni več mogoče spremeniti."
        ),
        "link.not_live.next": (
            "Če želite, da otrok storitev znova uporablja, ga prosite, naj na strani za prijavo "
            "pošlje novo zahtevo."
        ),
        # Page: errors
        "error.title": "Napaka",
        "error.heading.400": "Zahteve ni bilo mogoče obdelati",
        "error.heading.403": "To dejanje ni dovoljeno",
        "error.heading.404": "Strani ni mogoče najti",
        "error.heading.429": "Preveč poskusov",
        "error.heading.503": "Storitev začasno ni na voljo",
        "error.heading.other": "Prišlo je do napake",
        "error.retry_seconds.one": "Poskusite znova čez {count} sekundo.",
        "error.retry_seconds.two": "Poskusite znova čez {count} sekundi.",
        "error.retry_seconds.few": "Poskusite znova čez {count} sekunde.",
        "error.retry_seconds.other": "Poskusite znova čez {count} sekund.",
        "error.retry_minutes.one": "Poskusite znova čez {count} minuto.",
        "error.retry_minutes.two": "Poskusite znova čez {count} minuti.",
        "error.retry_minutes.few": "Poskusite znova čez {count} minute.",
        "error.retry_minutes.other": "Poskusite znova čez {count} minut.",
        "error.retry_later": "Poskusite znova pozneje.",
        "error.form_expired": (
            "Obrazca ni bilo mogoče sprejeti: potekel je ali pa brskalnik ni poslal varnostnega "
            "piškotka. Vrnite se, znova naložite stran in obrazec pošljite še enkrat."
        ),
        "error.status": "Koda napake: {status}",
    },
}
