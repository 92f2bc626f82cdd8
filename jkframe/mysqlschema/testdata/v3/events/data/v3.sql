UPDATE events SET at = '2024-01-02 03:04:05' WHERE id = 1;
