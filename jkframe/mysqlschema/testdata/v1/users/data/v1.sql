INSERT INTO users (name) VALUES ('admin');
INSERT INTO users (name) VALUES ('semi;colon'), ('it''s');
