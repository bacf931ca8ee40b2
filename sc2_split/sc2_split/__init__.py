"""Split-computing object detection (SC2) for ROS 2: the head runs on the robot, the tail on the edge."""
