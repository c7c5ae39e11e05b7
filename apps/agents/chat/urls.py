from django.urls import path

from . import views

urlpatterns = [
    path("chat/", views.chat_home, name="chat_home"),
    path("chat/new/", views.chat_new, name="chat_new"),
    path("chat/c/<int:conversation_id>/", views.chat_conversation, name="chat_conversation"),
    path("chat/m/<int:message_id>/feedback/", views.message_feedback, name="chat_feedback"),
]
