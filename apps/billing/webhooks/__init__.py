"""Stripe webhooks: verified on the raw body, applied once per event id.

- The signature is Stripe's (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`), checked
  by the SDK with a 300 s tolerance before anything is parsed; a bad one changes nothing.
- The StripeEvent row (unique event id) is inserted in the same transaction as the event's
  effect: a replay finds the row and does nothing; two deliveries racing block on the unique
  index and the loser sees the winner's row. Ledger writes carry their own keys
  (`topup:<session>`, `invoice:<invoice>`, `refund:<charge>:<cumulative cents>`), a second
  line of defence.
- A refunded top-up (charge.refunded) takes back only what is newly refunded, never more than
  the top-up granted, and may leave a debt (a negative balance) when the credit was spent.
- What a Checkout sold is our CheckoutSession row's say, never the event's metadata; the plan of
  a subscription is a configured Stripe price, or metadata that one of our subscription
  Checkouts for that workspace and plan vouches for.
- Subscription changes apply only when the event is at least as new as the last one applied
  (Stripe does not deliver in order).
- Events we cannot place (unknown customer or session) are stored with why, and answered 200:
  Stripe would otherwise retry them for days.

No balance push to the gateway is needed after a grant: the gateway's credit scope re-reads the
ledger balance at the next reservation (apps.llm.core.budget).

`receive` verifies, records and dispatches a delivery; `checkout_events`,
`subscription_events` and `refund_events` apply each event type; `fields` reads an event's
object defensively.
"""

from .receive import WebhookReceipt, WebhookRejectedError, stripe_webhook_receive

__all__ = ["WebhookReceipt", "WebhookRejectedError", "stripe_webhook_receive"]
