/* version 2: e-mail addresses; required from now on */
ALTER TABLE users ADD COLUMN email VARCHAR(255) NOT NULL DEFAULT '';
