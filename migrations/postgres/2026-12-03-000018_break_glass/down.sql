DROP TABLE break_glass_reviews;
DROP TABLE break_glass;
