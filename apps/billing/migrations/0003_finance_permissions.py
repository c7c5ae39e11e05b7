"""The `finance` staff group sees every billing model (view) and may resolve outcome disputes
(change on Outcome: the admin actions). Nothing on traces: finance sees money, not prompts.

Django creates permissions after migrating (post_migrate), so on a fresh database they do not
exist yet here: they are created now, with the names Django would give them (post_migrate then
finds them and adds nothing)."""

from django.db import migrations

VIEW = (
    "plan",
    "creditbalance",
    "ledgerentry",
    "billingcustomer",
    "subscription",
    "checkoutsession",
    "stripeevent",
    "usagereport",
    "outcome",
)
CHANGE = ("outcome",)


def _permissions(apps):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    wanted = [("view", name) for name in VIEW] + [("change", name) for name in CHANGE]
    for action, model_name in wanted:
        model = apps.get_model("billing", model_name)
        content_type, _ = ContentType.objects.get_or_create(app_label="billing", model=model_name)
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type,
            codename=f"{action}_{model_name}",
            defaults={"name": f"Can {action} {model._meta.verbose_name_raw}"},
        )
        yield permission


def grant(apps, schema_editor):
    finance, _ = apps.get_model("auth", "Group").objects.get_or_create(name="finance")
    finance.permissions.add(*_permissions(apps))


def revoke(apps, schema_editor):
    finance = apps.get_model("auth", "Group").objects.filter(name="finance").first()
    if finance is not None:
        finance.permissions.remove(*_permissions(apps))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_plans_ledger_append_only"),
        ("workspaces", "0002_staff_groups"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
