# a first event
INSERT INTO events (id, body, kind) VALUES (1, 'created; "v2"', 'audit');
