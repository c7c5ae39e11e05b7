from django.urls import path

from . import views

urlpatterns = [
    path("approvals/", views.inbox, name="approvals"),
    path("approvals/count/", views.count, name="approvals_count"),
    path("approvals/<str:public_id>/", views.action_page, name="approval"),
    path("approvals/<str:public_id>/decide/", views.decide, name="approval_decide"),
]
