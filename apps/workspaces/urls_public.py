from django.urls import path

from . import views_public

urlpatterns = [
    path("", views_public.home, name="home"),
    path("workspaces/new/", views_public.workspace_new, name="workspace_new"),
    path("workspaces/<slug:slug>/open/", views_public.workspace_open, name="workspace_open"),
    path("invitations/<str:token>/", views_public.invitation, name="invitation"),
]
