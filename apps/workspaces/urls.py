from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/handoff/<str:token>/", views.handoff, name="workspace_handoff"),
    path("settings/", views.settings_page, name="workspace_settings"),
    path("settings/rename/", views.rename, name="workspace_rename"),
    path("settings/invitations/", views.invite, name="workspace_invite"),
    path(
        "settings/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke_view,
        name="workspace_invitation_revoke",
    ),
    path("settings/api-keys/", views.api_key_create_view, name="workspace_api_key_create"),
    path(
        "settings/api-keys/<int:api_key_id>/revoke/",
        views.api_key_revoke_view,
        name="workspace_api_key_revoke",
    ),
    path(
        "settings/members/<int:membership_id>/role/",
        views.member_role,
        name="workspace_member_role",
    ),
    path(
        "settings/members/<int:membership_id>/remove/",
        views.member_remove,
        name="workspace_member_remove",
    ),
]
