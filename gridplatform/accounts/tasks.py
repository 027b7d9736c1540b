from __future__ import annotations

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone

from gridplatform.accounts import services


@shared_task(time_limit=60, soft_time_limit=50)
def sessions_clear_expired() -> int:
    """Delete expired sessions; run by beat. Idempotent: a second run finds nothing to delete."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


@shared_task(time_limit=60, soft_time_limit=50)
def registrations_forget() -> int:
    """Delete registrations whose email link expired unopened; run by beat. Idempotent."""
    return services.registrations_forget()
