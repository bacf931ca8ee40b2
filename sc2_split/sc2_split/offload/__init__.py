"""Full offloading, what users pick instead of split computing: frames sent as images (JPEG, WebP)
or as a video stream (H.264, H.265), and decoded at the edge as a real receiver would."""
