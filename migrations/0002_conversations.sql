-- Archived conversations, written by the outbox flushers when a conversation closes.
-- No foreign keys to users or categories: an archive row must always be writable, even after
-- an account or category is gone, or the outbox entry would be retried forever.

CREATE TABLE customers (
    id          uuid PRIMARY KEY,
    email       text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));

CREATE TABLE conversations (
    id                 uuid PRIMARY KEY,
    customer_id        uuid NOT NULL REFERENCES customers (id),
    category_id        bigint,
    subject            text NOT NULL DEFAULT '',
    priority           text NOT NULL DEFAULT 'normal',
    status             text NOT NULL CHECK (status IN ('closed', 'abandoned')),
    agent_id           bigint,
    created_at         timestamptz NOT NULL,
    enqueued_at        timestamptz NOT NULL,
    assigned_at        timestamptz,
    first_response_at  timestamptz,
    closed_at          timestamptz,
    closed_by          text,
    resolution         text NOT NULL DEFAULT '',
    archived_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_agent_idx ON conversations (agent_id, closed_at DESC);
CREATE INDEX conversations_category_idx ON conversations (category_id, closed_at DESC);
CREATE INDEX conversations_closed_idx ON conversations (closed_at DESC);

-- id is the Redis stream id ("1732233445123-0"); ms and seq keep send order sortable.
CREATE TABLE messages (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id               text NOT NULL,
    ms               bigint NOT NULL,
    seq              bigint NOT NULL,
    sender_id        text NOT NULL,
    sender_role      text NOT NULL,
    sender_name      text NOT NULL,
    body             text NOT NULL,
    client_msg_id    text NOT NULL,
    internal         boolean NOT NULL DEFAULT false,
    sent_at          timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, id)
);
CREATE INDEX messages_order_idx ON messages (conversation_id, ms, seq);

CREATE TABLE conversation_events (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id               text NOT NULL,
    type             text NOT NULL,
    actor_id         text NOT NULL DEFAULT '',
    actor_role       text NOT NULL DEFAULT '',
    data             text NOT NULL DEFAULT '',
    at               timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, id)
);
