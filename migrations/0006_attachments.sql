-- Files attached to messages. Uploaded first (message_id NULL: unsent, swept after an hour), then
-- claimed by one SEND_MESSAGE (claimed_by = its client_msg_id, so a retry of that send finds them
-- again) and linked to the message it made. No foreign key to conversations: a live conversation
-- has no row there until it is archived.

CREATE TABLE attachments (
    id               uuid PRIMARY KEY,
    conversation_id  uuid NOT NULL,
    uploader_id      text NOT NULL,
    uploader_role    text NOT NULL,
    name             text NOT NULL,
    content_type     text NOT NULL,
    size             integer NOT NULL CHECK (size > 0),
    sha256           bytea NOT NULL,
    data             bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    claimed_by       text,
    claimed_at       timestamptz,
    message_id       text,
    internal         boolean NOT NULL DEFAULT false
);
CREATE INDEX attachments_conversation_idx ON attachments (conversation_id, uploader_id);
CREATE INDEX attachments_unsent_idx ON attachments (created_at) WHERE message_id IS NULL;

-- The archived message's attachments as the live one carried them: a JSON array of
-- {id, name, size, content_type}, '' for none.
ALTER TABLE messages ADD COLUMN attachments text NOT NULL DEFAULT '';
