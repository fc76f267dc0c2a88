job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        args = ["--port", "8080"]
      }
    }
  }
}
