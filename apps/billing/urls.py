"""The billing page on a workspace host (owners and admins)."""

from django.urls import path

from . import views

urlpatterns = [
    path("billing/", views.billing_page, name="billing"),
    path("billing/top-up/", views.topup, name="billing_topup"),
    path("billing/upgrade/", views.upgrade, name="billing_upgrade"),
    path("billing/portal/", views.manage_subscription, name="billing_portal"),
    path("billing/outcomes/<int:outcome_id>/dispute/", views.dispute, name="billing_dispute"),
]
