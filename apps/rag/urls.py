"""The Documents pages on a workspace host (members)."""

from django.urls import path

from . import views

urlpatterns = [
    path("documents/", views.documents_page, name="rag_documents"),
    path("documents/upload/", views.document_upload, name="rag_upload"),
    path("documents/paste/", views.document_paste, name="rag_paste"),
    path("documents/url/", views.document_import_url, name="rag_import_url"),
    path("documents/<int:document_id>/", views.document_detail, name="rag_document"),
    path(
        "documents/<int:document_id>/reindex/", views.document_reindex, name="rag_document_reindex"
    ),
    path("documents/<int:document_id>/delete/", views.document_delete, name="rag_document_delete"),
]
