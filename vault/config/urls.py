from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("vault.urls")),
]

handler404 = "vault.views.not_found"
handler500 = "vault.views.server_error"
