"""The credit hash: the one Redis structure the gateway shares with the ledger.

Its layout belongs to the gateway's budget store (budget.py: a balance scope's hash under
`<schema>:credits` with limit, seq, reserved, pending and one `p:<call id>` field per settled
call not yet debited). The ledger side (billing's debit queue and its credit status) touches it
only through `CreditHash`, never by key or field name, so the layout can change in one place.
"""

from __future__ import annotations

import redis

# A debit committed: the ledger balance is ARGV[1] as of entry ARGV[2]. Take the call's pending
# amount out (once: the field goes with it) and keep the newer balance. A hash that is gone
# pends nothing; the next reservation starts it from the ledger.
BALANCE_POSTED = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local seq = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1') < seq then
  redis.call('HSET', KEYS[1], 'limit', tonumber(ARGV[1]), 'seq', seq)
end
local field = 'p:' .. ARGV[3]
local amount = redis.call('HGET', KEYS[1], field)
if amount then
  redis.call('HDEL', KEYS[1], field)
  if redis.call('HINCRBY', KEYS[1], 'pending', -tonumber(amount)) <= 0 then
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
  end
  return 1
end
return 0
"""


def balance_key(schema: str) -> str:
    """The credit balance scope's hash of a workspace."""
    return f"{schema}:credits"


class CreditHash:
    """A workspace's credit hash as the ledger side sees it (sync: the debit worker's client)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._posted = client.register_script(BALANCE_POSTED)

    def posted(
        self, *, schema: str, call_id: str, balance_micros: int, entry_id: int, ttl: int
    ) -> bool:
        """A call's debit committed as ledger entry `entry_id`, leaving `balance_micros`: take
        the call out of pending (once) and keep the newer balance. False when the call was no
        longer pending (acknowledged before, or the hash expired)."""
        done = self._posted(
            keys=[balance_key(schema)], args=[balance_micros, entry_id, call_id, ttl]
        )
        return bool(done)

    def outstanding(self, *, schema: str) -> tuple[int, int]:
        """(pending, reserved) micro-dollars: settled calls not debited yet, and calls running."""
        pending, reserved = self.client.hmget(balance_key(schema), ["pending", "reserved"])
        return max(0, int(pending or 0)), max(0, int(reserved or 0))
