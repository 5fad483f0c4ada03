from django.contrib import admin
from django.urls import include, path

from vault import pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("login/", pages.login_page, name="login"),
    path("logout/", pages.logout_page, name="logout"),
    path("secrets/", pages.secrets_page, name="secrets"),
    path("key-backup/", pages.key_backup_page, name="key-backup"),
    # The playbook and recoverctl's last message say /key-check, without a slash.
    path("key-check", pages.key_check_page, name="key-check"),
    path("admin/", admin.site.urls),
    path("api/", include("vault.urls")),
]

handler404 = "vault.views.not_found"
handler500 = "vault.views.server_error"
