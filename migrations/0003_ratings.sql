-- Customer satisfaction, given after a conversation closed.
ALTER TABLE conversations
    ADD COLUMN rating integer CHECK (rating BETWEEN 1 AND 5),
    ADD COLUMN rating_comment text NOT NULL DEFAULT '',
    ADD COLUMN rated_at timestamptz;
