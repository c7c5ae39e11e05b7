"""POST /billing/stripe/webhook on the public host: Stripe's deliveries, verified on the raw body.

CSRF-exempt (Stripe signs instead); answers JSON: 200 once the event is stored (applied, ignored
or a duplicate), 400 when the signature or the body is bad, so Stripe shows why it failed.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.common.api import error_body

from .webhooks import WebhookRejectedError, stripe_webhook_receive


@csrf_exempt
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = JsonResponse(
            error_body("Stripe webhooks are POSTed.", type_="invalid_request_error"), status=405
        )
        response["Allow"] = "POST"
        return response
    try:
        receipt = stripe_webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except WebhookRejectedError as exc:
        return JsonResponse(
            error_body(exc.message, type_="invalid_request_error", code=exc.code), status=400
        )
    return JsonResponse(
        {"received": True, "duplicate": receipt.duplicate, "outcome": receipt.outcome}
    )
