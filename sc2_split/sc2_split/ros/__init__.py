"""ROS 2 nodes of the split detector: head and overlay on the robot, tail on the edge."""
