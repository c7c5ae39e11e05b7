"""The three plans as data, and the ledger made append-only in the database itself."""

from django.db import migrations

PLANS = [
    # code, name, monthly credit (µ$), day tokens, user day requests, price (cents), self-serve
    ("free", "Free", 1_000_000, 50_000, 500, 0, True, 0),
    ("pro", "Pro", 20_000_000, 2_000_000, 5_000, 2_000, True, 1),
    ("enterprise", "Enterprise", 500_000_000, 20_000_000, 50_000, 0, False, 2),
]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for code, name, credit, tokens, requests, price, self_serve, order in PLANS:
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "monthly_credit_micros": credit,
                "day_tokens": tokens,
                "user_day_requests": requests,
                "price_cents": price,
                "self_serve": self_serve,
                "sort_order": order,
            },
        )


# Corrections are new rows: an UPDATE of a ledger row is refused by the database, whoever asks.
# (DELETE stays possible: deleting a workspace cascades to its rows.)
APPEND_ONLY = """
CREATE FUNCTION billing_ledger_no_update() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'billing_ledger_entry is append-only: add a correcting entry instead';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_ledger_entry_append_only BEFORE UPDATE ON billing_ledger_entry
  FOR EACH ROW EXECUTE FUNCTION billing_ledger_no_update();
"""
DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS billing_ledger_entry_append_only ON billing_ledger_entry;
DROP FUNCTION IF EXISTS billing_ledger_no_update();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        migrations.RunPython(create_plans, migrations.RunPython.noop),
        migrations.RunSQL(APPEND_ONLY, DROP_APPEND_ONLY),
    ]
