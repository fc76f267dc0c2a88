job "web" {
  group "web" {
    task "api" {
      driver = "exec"
      config {
        command = "/bin/whoami"
      }
    }
  }
}
