"""Link estimation, rate policy and the local fallback: pure Python (no ROS, no torch), so that the
robot's decisions are unit-tested on scripted feedback and the nodes only feed them and act."""
