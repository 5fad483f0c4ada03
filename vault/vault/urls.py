from django.urls import path

from vault import views

# /healthz is answered by vault.middleware.HealthzMiddleware, before URL routing.
urlpatterns = [
    path("csrf", views.csrf, name="api-csrf"),
    path("login", views.login_view, name="api-login"),
    path("logout", views.logout_view, name="api-logout"),
    path("key", views.key, name="api-key"),
    path("key-check", views.key_check, name="api-key-check"),
    path("secrets", views.secrets, name="api-secrets"),
    path("secrets/<int:secret_id>", views.secret_detail, name="api-secret"),
]
