-- Search at scale (placeholder while measuring).
SELECT 1;
