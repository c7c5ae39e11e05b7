"""Deterministic synthetic PII: valid-looking values of every kind the masking must catch.

Cards pass Luhn, IBANs pass mod-97, tokens have their vendors' shapes. `PiiFactory(seed)` gives
the same values on every run, so a residue failure names a value that can be replayed.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass, field

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits


def luhn_complete(partial: str) -> str:
    """`partial` plus the check digit that makes it Luhn-valid."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return partial + str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    """A valid IBAN (compact) for `country` and its basic bank account number."""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def grouped(text: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


@dataclass
class PiiFactory:
    seed: int
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _chars(self, alphabet: str, n: int) -> str:
        # At least one digit: real keys have them, and a digit-free "token" reads as prose.
        body = [self.rng.choice(alphabet) for _ in range(n - 1)]
        body.insert(self.rng.randrange(n), self.rng.choice(string.digits))
        return "".join(body)

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def email(self) -> str:
        first = self.rng.choice(["jane", "omar", "li", "ana", "kofi", "sven", "mei"])
        last = self.rng.choice(["doe", "haddad", "wei", "silva", "mensah", "berg", "tanaka"])
        domain = self.rng.choice(["example.com", "mail.example.co.uk", "corp-example.de"])
        tag = self.rng.choice(["", "+billing", ".work"])
        return f"{first}.{last}{self.rng.randrange(1000)}{tag}@{domain}"

    def phone(self) -> str:
        n = self._digits
        return self.rng.choice(
            [
                f"+1 415 555 {n(4)}",
                f"({n(3)}) 555-{n(4)}",
                f"415-{n(3)}-{n(4)}",
                f"+44 20 7946 {n(4)}",
                f"+49 30 {n(8)}",
                f"+33 1 {n(2)} {n(2)} {n(2)} {n(2)}",
                f"+91 98765 {n(5)}",
                f"0044 20 {n(4)} {n(4)}",
                f"+1{n(10)}",
                f"+49-30-{n(7)}",
            ]
        )

    def card(self) -> str:
        prefix, length = self.rng.choice([("4", 16), ("51", 16), ("37", 15), ("6011", 16)])
        number = luhn_complete(prefix + self._digits(length - 1 - len(prefix)))
        return self.rng.choice([grouped(number), grouped(number, sep="-"), number])

    def iban(self) -> str:
        country, bban = self.rng.choice(
            [
                ("DE", self._digits(18)),
                ("GB", "WEST" + self._digits(14)),
                ("FR", self._digits(10) + self._chars(UPPER_ALNUM, 11) + self._digits(2)),
                ("NL", "ABNA" + self._digits(10)),
            ]
        )
        compact = iban(country, bban)
        return self.rng.choice([grouped(compact), compact])

    def token(self) -> str:
        c = self._chars
        jwt_header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256"}).encode()).rstrip(b"=")
        payload = json.dumps({"sub": self._digits(8), "name": self.rng.choice(["x", "y"])})
        jwt_body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=")
        return self.rng.choice(
            [
                f"sk-proj-{c(ALNUM, 40)}",
                f"sk-ant-api03-{c(ALNUM + '_-', 48)}",
                f"sk-{c(ALNUM, 32)}",
                f"AKIA{c(UPPER_ALNUM, 16)}",
                f"ghp_{c(ALNUM, 36)}",
                f"xoxb-{self._digits(11)}-{c(ALNUM, 24)}",
                f"{jwt_header.decode()}.{jwt_body.decode()}.{c(ALNUM + '_-', 43)}",
            ]
        )

    def bearer(self) -> str:
        return self._chars(ALNUM + "._-", 40)

    def one_of_each(self) -> dict[str, str]:
        return {
            "email": self.email(),
            "phone": self.phone(),
            "card": self.card(),
            "iban": self.iban(),
            "token": self.token(),
            "bearer": self.bearer(),
        }
