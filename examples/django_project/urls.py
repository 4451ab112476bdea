from django.urls import path

import views

urlpatterns = [
    path("block/", views.block),
    path("ping/", views.ping),
]
