UPDATE users SET email = 'admin@example.com' WHERE name = 'admin';
