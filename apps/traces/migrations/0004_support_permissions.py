"""Model view permissions for the staff groups: `support` views traces and the call log,
`finance` the call log only. The admin checks the groups themselves (apps/console/permissions.py);
these permissions keep Django's own views of the groups truthful."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "support": ("view_llmtrace", "view_llmtraceraw", "view_llmcalllog"),
    "finance": ("view_llmcalllog",),
}


def grant(apps, schema_editor):
    # Permissions are normally created after migrations (post_migrate); create them now.
    app_config = apps.get_app_config("traces")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="traces", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="traces", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0003_rollups"),
        ("workspaces", "0002_staff_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
