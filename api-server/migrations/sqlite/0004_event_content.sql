-- Large event bodies: an event whose body is over the server's limit keeps a truncated body in
-- `data` and its whole body here, once (NULL for every other event).
ALTER TABLE events ADD COLUMN content TEXT;
