"""A user's channels as SNS subscriptions on the user's own topic (``channels.py`` says why).

Every call to SNS that managing channels makes is here, and only the API's role
may make them (``policy-<stage>.json``: ``sns:CreateTopic``, ``Subscribe``,
``Unsubscribe``, ``ListSubscriptionsByTopic`` on the users' topic-name prefix).
"""

from __future__ import annotations

import logging
import secrets

from shared.errors import ApiError, bad_request, unavailable

from .channels import channel_id, protocol_of, target_of

log = logging.getLogger(__name__)

SIGNING_SECRET_BYTES = 32


def sns_unavailable(what: str) -> ApiError:
    return unavailable(
        "notifications_unavailable", f"the notification service (SNS) could not {what}; try again shortly", 5, "sns"
    )


class ChannelService:
    """A user's channels: the items in the table and the subscriptions on their topic."""

    def __init__(self, store, sns, topic_prefix: str, max_channels: int, max_topics: int):
        self.store = store
        self.sns = sns
        self.topic_prefix = topic_prefix
        self.max_channels = max_channels
        self.max_topics = max_topics

    def topic_name(self, user: str) -> str:
        return f"{self.topic_prefix}{user}"

    def create(self, user: str, channel: dict) -> dict:
        from botocore.exceptions import ClientError

        from shared.errors import aws_failures

        if not self.store.reserve_topic(user, self.max_topics):
            # The account's SNS topics (a quota, 100,000 by default) are spoken for: the
            # operator raises the quota and ALERTS_MAX_TOPICS (README, "Growing").
            log.error("no SNS topic left for a new user: %s in use (ALERTS_MAX_TOPICS)", self.max_topics)
            raise unavailable(
                "notifications_at_capacity",
                "no new notification channel can be made right now (the service's capacity); try again later",
                3600,
                "sns",
            )
        try:
            topic_arn = self.sns.create_topic(Name=self.topic_name(user))["TopicArn"]  # idempotent
        except aws_failures() as exc:
            log.error("SNS CreateTopic failed: %s", exc)
            raise sns_unavailable("create your notification topic") from None
        item = {**channel, "id": channel_id(channel), "status": "pending_confirmation", "topic_arn": topic_arn}
        # ChannelLimitReached, ChannelExists: the caller's to answer (app.py maps them).
        item = self.store.add_channel(user, item, self.max_channels, secrets.token_hex(SIGNING_SECRET_BYTES))
        try:
            subscription = self.sns.subscribe(
                TopicArn=topic_arn,
                Protocol=protocol_of(channel),
                Endpoint=target_of(channel),
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        except aws_failures() as exc:
            # Nothing half made is left behind: the channel goes again, with its slot.
            self.store.remove_channel(user, item["id"])
            if isinstance(exc, ClientError) and exc.response["Error"]["Code"] == "InvalidParameter":
                refused = f"SNS refused the endpoint: {exc.response['Error'].get('Message', '')}"
                if channel["type"] == "webhook":
                    raise bad_request("invalid_url", refused) from None
                raise bad_request("invalid_email", refused) from None
            log.error("SNS Subscribe failed: %s", exc)
            raise sns_unavailable("subscribe the channel") from None
        try:
            status = self._statuses(topic_arn).get((protocol_of(channel), target_of(channel)), "pending_confirmation")
        except aws_failures() as exc:  # subscribed all the same: the next listing asks again
            log.warning("SNS could not say the new subscription's status: %s", exc)
            status = "pending_confirmation"
        self.store.set_channel(user, item["id"], subscription_arn=subscription, status=status)
        return {**item, "subscription_arn": subscription, "status": status}

    def list(self, user: str) -> list[dict]:
        """The user's channels with their status as SNS has it now; the status last seen
        when SNS cannot be asked (the list itself never fails for SNS)."""
        channels = self.store.list_channels(user)
        topic_arn = next((c.get("topic_arn") for c in channels if c.get("topic_arn")), None)
        if channels and topic_arn:
            try:
                statuses = self._statuses(topic_arn)
            except Exception as exc:  # noqa: BLE001 - degraded: the stored statuses
                log.warning("SNS could not be asked for subscription statuses: %s", exc)
                statuses = None
            for channel in channels:
                if statuses is None:
                    continue
                now = statuses.get((protocol_of(channel), target_of(channel)), "inactive")
                if now != channel.get("status"):
                    self.store.set_channel(user, channel["id"], status=now)
                    channel["status"] = now
        return channels

    def delete(self, user: str, channel_id_: str) -> None:
        from botocore.exceptions import ClientError

        from shared.errors import aws_failures

        channel = self.store.get_channel(user, channel_id_)  # NotFound: not this user's
        subscription = channel.get("subscription_arn") or ""
        if subscription.startswith("arn:"):
            try:
                self.sns.unsubscribe(SubscriptionArn=subscription)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "NotFound":
                    log.error("SNS Unsubscribe failed: %s", exc)
                    raise sns_unavailable("remove the subscription") from None
            except aws_failures() as exc:
                log.error("SNS Unsubscribe failed: %s", exc)
                raise sns_unavailable("remove the subscription") from None
        left = self.store.remove_channel(user, channel_id_)
        if left == 0 and channel.get("topic_arn"):
            # No channel left: the topic goes, and with it its place in the account's quota.
            try:
                self.sns.delete_topic(TopicArn=channel["topic_arn"])
                self.store.release_topic(user)
            except aws_failures() as exc:  # kept, counted: the next channel reuses it
                log.warning("the user's topic could not be deleted now: %s", exc)

    def _statuses(self, topic_arn: str) -> dict[tuple[str, str], str]:
        """(protocol, endpoint) -> status, for every subscription on the topic."""
        out = {}
        token = None
        while True:
            page = self.sns.list_subscriptions_by_topic(TopicArn=topic_arn, **({"NextToken": token} if token else {}))
            for sub in page.get("Subscriptions", []):
                arn = sub.get("SubscriptionArn", "")
                out[(sub.get("Protocol"), sub.get("Endpoint"))] = (
                    "confirmed" if arn.startswith("arn:") else "pending_confirmation"
                )
            token = page.get("NextToken")
            if not token:
                return out
